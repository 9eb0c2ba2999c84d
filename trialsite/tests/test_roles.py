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
    assert "alice: coordinator in microdose-mood at LDN" in out
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


@pytest.fixture
def second_trial(trial):
    from trialsite.models import Trial
    from trialsite.services import site_create

    other = Trial.objects.create(slug="other-trial", title="Another trial")
    site_create(code="BER", name="Berlin", timezone="Europe/Berlin", trials=[other])
    return other


def test_with_two_trials_grant_role_needs_the_trial_unless_the_site_tells(call, trial, second_trial):
    with pytest.raises(CommandError, match="more than one trial"):
        call("grant_role", "tina", "statistician", "--create", "--password", "a-long-passphrase-42")
    out = call("grant_role", "tina", "statistician", "--trial", "other-trial")
    assert "tina: statistician in other-trial at all sites" in out
    tina = get_user_model().objects.get(username="tina")
    assert roles.trial_ids(tina) == {second_trial.pk}
    assert roles.has_role(tina, roles.STATISTICIAN, trial=second_trial)
    assert not roles.has_role(tina, roles.STATISTICIAN, trial=trial)
    # The site belongs to one trial only: the trial is implied.
    out = call("grant_role", "uma", "coordinator", "--site", "BER", "--create", "--password", "a-long-passphrase-42")
    assert "uma: coordinator in other-trial at BER" in out
    with pytest.raises(CommandError, match="unknown trial"):
        call("grant_role", "uma", "monitor", "--trial", "nope")
    with pytest.raises(CommandError, match="not a site of"):
        call("grant_role", "uma", "coordinator", "--trial", trial.slug, "--site", "BER")


def test_groups_are_derived_from_grants(call, site_ldn):
    from trialsite.services import role_revoke

    call("grant_role", "gus", "coordinator", "--site", "LDN", "--create", "--password", "a-long-passphrase-42")
    call("grant_role", "gus", "coordinator", "--site", "NYC")
    gus = get_user_model().objects.get(username="gus")
    assert list(gus.groups.values_list("name", flat=True)) == ["coordinator"]
    role_revoke(grant=RoleGrant.objects.get(user=gus, site=site_ldn))
    assert gus.groups.filter(name="coordinator").exists()  # still a coordinator at NYC
    role_revoke(grant=RoleGrant.objects.get(user=gus))
    assert not gus.groups.exists()
    assert roles.roles_of(gus) == set()


def test_a_group_alone_grants_nothing(site_ldn):
    user = get_user_model().objects.create_user("grouped", password="x" * 12, is_staff=True)
    user.groups.add(Group.objects.get(name="trial_manager"))
    assert roles.roles_of(user) == set()
    assert roles.filter_by_site(Site.objects.all(), user, site_field="pk").count() == 0


def test_migration_assigns_grants_to_the_trial_when_unambiguous(trial, second_trial, site_ldn):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("trialsite.migrations.0007_rolegrant_assign_trial")
    User = get_user_model()
    coordinator = RoleGrant.objects.create(
        user=User.objects.create_user("c1", password="x" * 12), role="coordinator", site=site_ldn
    )
    manager = RoleGrant.objects.create(user=User.objects.create_user("m1", password="x" * 12), role="trial_manager")
    migration.assign_trials(apps, None)
    coordinator.refresh_from_db()
    manager.refresh_from_db()
    assert coordinator.trial == trial  # LDN belongs to one trial only
    assert manager.trial is None  # two trials, no site: left unassigned, and it grants nothing
    assert roles.roles_of(manager.user) == set()
    second_trial.role_grants.all().delete()
    from trialsite.models import Trial

    Trial.objects.filter(pk=second_trial.pk).delete()
    migration.assign_trials(apps, None)
    manager.refresh_from_db()
    assert manager.trial == trial  # one trial in the database: every grant is its
