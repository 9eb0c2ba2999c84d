import pghistory.models
import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from trialsite.audit import audit_context, require_reason
from trialsite.models import Site

pytestmark = pytest.mark.django_db


def events_for(site):
    return list(pghistory.models.Events.objects.tracks(site).order_by("pgh_created_at"))


def test_insert_update_delete_are_recorded_with_context(make_staff):
    user = make_staff("data_manager")
    with audit_context(user=user, reason="site renamed by sponsor"):
        site = Site.objects.create(code="BER", name="Berlin", timezone="Europe/Berlin")
        site.name = "Berlin Charité"
        site.save()
    events = events_for(site)
    assert [e.pgh_label for e in events] == ["insert", "update"]
    assert events[1].pgh_data["name"] == "Berlin Charité"
    assert events[1].pgh_diff == {"name": ["Berlin", "Berlin Charité"]}
    assert events[1].pgh_context["user"] == user.pk
    assert events[1].pgh_context["reason"] == "site renamed by sponsor"


def test_bulk_update_and_raw_sql_are_captured():
    site = Site.objects.create(code="PAR", name="Paris", timezone="Europe/Paris")
    with audit_context(reason="bulk fix"):
        Site.objects.filter(pk=site.pk).update(name="Paris Nord")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE trialsite_site SET name = %s WHERE id = %s", ["Paris Sud", site.pk])
    names = [e.pgh_data["name"] for e in events_for(site)]
    assert names == ["Paris", "Paris Nord", "Paris Sud"]


def test_delete_is_captured():
    site = Site.objects.create(code="ROM", name="Rome", timezone="Europe/Rome")
    pk = site.pk
    site.delete()
    event_model = pghistory.models.Events.objects.filter(pgh_obj_model="trialsite.Site", pgh_obj_id=str(pk))
    assert [e.pgh_label for e in event_model.order_by("pgh_created_at")] == ["insert", "delete"]


def test_audit_rows_cannot_be_altered_or_deleted():
    site = Site.objects.create(code="MAD", name="Madrid", timezone="Europe/Madrid")
    table = Site.pgh_event_models["insert"]._meta.db_table
    for sql in (
        f"UPDATE {table} SET name = 'forged' WHERE pgh_obj_id = %s",
        f"DELETE FROM {table} WHERE pgh_obj_id = %s",
    ):  # noqa: S608
        with (
            pytest.raises(DatabaseError, match="Cannot update or delete"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [site.pk])
    assert [e.pgh_data["name"] for e in events_for(site)] == ["Madrid"]


def test_reason_is_required_for_edits():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        require_reason("  ")
    assert require_reason(" typo in date ") == "typo in date"


def test_metadata_added_later_in_a_transaction_reaches_every_event_of_the_context(make_staff):
    # The context row is written once per transaction and context, and again only when its metadata changes.
    from trialsite.audit import annotate

    user = make_staff("data_manager")
    with transaction.atomic(), audit_context(reason="renamed on the phone"):
        site = Site.objects.create(code="LIS", name="Lisbon", timezone="Europe/Lisbon")
        annotate(user=user)
        site.name = "Lisboa"
        site.save()
    first, second = events_for(site)
    assert first.pgh_context_id == second.pgh_context_id
    assert second.pgh_context["user"] == user.pk and second.pgh_context["reason"] == "renamed on the phone"


def test_a_rolled_back_savepoint_keeps_the_context_of_later_events():
    with audit_context(reason="retried write"):
        with pytest.raises(RuntimeError), transaction.atomic():
            Site.objects.create(code="OSL", name="Oslo", timezone="Europe/Oslo")
            raise RuntimeError("undo")
        site = Site.objects.create(code="BGO", name="Bergen", timezone="Europe/Oslo")
    (event,) = events_for(site)
    assert event.pgh_context["reason"] == "retried write"


def test_the_migrated_database_has_the_cheaper_ignore_check():
    # pgtrigger writes its own version again with every trigger a migration installs; post_migrate writes ours.
    from trialsite.audit import SHOULD_IGNORE_SQL

    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = '_pgtrigger_should_ignore'")
        (source,) = cursor.fetchone()
    assert source.strip() in SHOULD_IGNORE_SQL and "current_setting('pgtrigger.ignore', true)" in source


def test_ignored_audit_triggers_are_skipped_and_the_others_still_fire():
    import pgtrigger

    (insert,) = (t.name for t in Site._meta.triggers if t.name.startswith("insert"))
    with pgtrigger.ignore(f"trialsite.Site:{insert}"):
        site = Site.objects.create(code="HEL", name="Helsinki", timezone="Europe/Helsinki")
        site.name = "Helsingfors"
        site.save()
    assert [e.pgh_label for e in events_for(site)] == ["update"]
    with connection.cursor() as cursor:
        # Empty (as after a transaction that set it) or not an array: nothing is ignored.
        for value in ("", "not an array"):
            cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [value])
            Site.objects.filter(pk=site.pk).update(name=f"Helsinki {value}")
    assert [e.pgh_label for e in events_for(site)] == ["update", "update", "update"]
