import pytest
from django.core.management.base import CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db


def test_staff_totp_creates_a_working_device(call, make_staff):
    user = make_staff("coordinator", username="carol")
    out = call("staff_totp", "carol", "--no-qr")
    assert out.splitlines()[1].startswith("otpauth://totp/")
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed
    token = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    assert device.verify_token(token)
    assert not device.verify_token(f"{(token + 1) % 1_000_000:06d}")


def test_staff_totp_refuses_to_replace_without_reset(call, make_staff):
    make_staff("coordinator", username="dan")
    call("staff_totp", "dan", "--no-qr")
    with pytest.raises(CommandError, match="already has"):
        call("staff_totp", "dan", "--no-qr")
    call("staff_totp", "dan", "--no-qr", "--reset")
    assert TOTPDevice.objects.filter(user__username="dan").count() == 1


def test_staff_totp_unknown_user(call):
    with pytest.raises(CommandError, match="no staff user"):
        call("staff_totp", "nobody")
