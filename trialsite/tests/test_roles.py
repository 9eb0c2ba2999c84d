import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import CommandError

from trialsite import roles
from trialsite.models import RoleGrant, Site

pytestmark = pytest.mark.django_db


def test_migration_creates_the_role_groups():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ALL_ROLES)
    assert set(roles.ALL_ROLES) == {
        "coordinator",
        "trial_manager",
        "safety_physician",
        "data_manager",
        "monitor",
        "statistician",
        "unblinded_statistician",
    }


def test_grant_role_creates_user_with_site_scope(call, site_ldn, site_nyc):
    out = call("grant_role", "alice", "coordinator", "--site", "LDN", "--create", "--password", "a-long-passphrase-42")
    assert "alice: coordinator at LDN" in out
    alice = get_user_model().objects.get(username="alice")
    assert alice.is_staff
    assert alice.check_password("a-long-passphrase-42")
    assert alice.groups.filter(name="coordinator").exists()
    assert roles.site_ids(alice) == {site_ldn.pk}
    assert roles.can_reach_site(alice, site_ldn.pk)
    assert not roles.can_reach_site(alice, site_nyc.pk)
    qs = roles.filter_by_site(Site.objects.all(), alice, site_field="pk")
    assert list(qs) == [site_ldn]


def test_trial_wide_role_reaches_every_site(call, site_ldn, site_nyc):
    call("grant_role", "pi", "trial_manager", "--create", "--password", "a-long-passphrase-42")
    pi = get_user_model().objects.get(username="pi")
    assert roles.site_ids(pi) is None
    assert roles.filter_by_site(Site.objects.all(), pi, site_field="pk").count() == 2


def test_grant_is_idempotent(call, site_ldn):
    call("grant_role", "bob", "coordinator", "--site", "LDN", "--create", "--password", "a-long-passphrase-42")
    call("grant_role", "bob", "coordinator", "--site", "LDN")
    assert RoleGrant.objects.filter(user__username="bob").count() == 1


def test_grant_role_errors(call, site_ldn):
    with pytest.raises(CommandError, match="no user"):
        call("grant_role", "ghost", "coordinator")
    with pytest.raises(CommandError, match="unknown site"):
        call("grant_role", "ghost", "coordinator", "--site", "XXX", "--create", "--password", "a-long-passphrase-42")
    with pytest.raises(CommandError, match="trial-wide role"):
        call("grant_role", "carol", "statistician", "--site", "LDN", "--create", "--password", "a-long-passphrase-42")
    with pytest.raises(CommandError, match="too short|too common"):
        call("grant_role", "dave", "monitor", "--create", "--password", "short")
    assert not get_user_model().objects.filter(username="dave").exists()


def test_no_grant_sees_nothing(site_ldn):
    user = get_user_model().objects.create_user("nobody", password="x" * 12, is_staff=True)
    assert roles.filter_by_site(Site.objects.all(), user, site_field="pk").count() == 0
    assert not roles.is_unblinded(user)


def test_superuser_is_not_unblinded(site_ldn):
    admin = get_user_model().objects.create_superuser("root", "r@example.org", "x" * 12)
    assert not roles.is_unblinded(admin)
