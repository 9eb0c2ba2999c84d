"""`manage.py staff_totp USERNAME`: give a staff user a TOTP device (2FA) and show its QR code once.

With TRIALSITE_REQUIRE_2FA (production), staff cannot sign in without a device; a system admin runs this
and the user scans the code with an authenticator app. `--reset` replaces lost devices.
"""

import segno
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Create a TOTP device for a staff user and print its provisioning URI and QR code."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reset", action="store_true", help="delete the user's existing TOTP devices first")
        parser.add_argument("--no-qr", action="store_true", help="print only the otpauth:// URI")

    @transaction.atomic
    def handle(self, *args, username, reset, no_qr, **options):
        user = get_user_model().objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"no staff user {username!r}")
        existing = TOTPDevice.objects.filter(user=user)
        if existing.exists() and not reset:
            raise CommandError(f"{username} already has a TOTP device (use --reset to replace it)")
        existing.delete()
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
        self.stdout.write(f"TOTP device created for {username}. Scan this once; it is not shown again.")
        self.stdout.write(device.config_url)
        if not no_qr:
            qr = segno.make(device.config_url)
            qr.terminal(out=self.stdout, compact=True)
