"""Web Push for real: the subscription API, the push channel against the local push-service double (VAPID
checked, aes128gcm decrypted), expired subscriptions, quiet hours, and a real Celery worker sending once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from participants.models import PushSubscription
from participants.services.push import push_subscription_save
from surveys.models import Reminder
from surveys.reminders.channels import PUSH_BODY, channel_get
from surveys.reminders.services import (
    reminder_send_error,
    reminder_send_prepare,
    reminder_send_record,
    reminders_plan_due,
)

from .reminder_helpers import make_instance, make_participant

# Noon in London on a summer weekday: outside the protocol's quiet hours (22:00-07:30).
NOON = datetime(2026, 6, 10, 11, 0, tzinfo=UTC)
ALWAYS_AWAKE = (time(3, 0), time(3, 1))


def send_like_the_task(reminder_id: int, *, now: datetime) -> str:
    """The worker's send path (surveys.tasks.reminder_send) with an injected clock: prepare, send, record."""
    from surveys.reminders.channels import ChannelError, PermanentChannelError

    plan = reminder_send_prepare(reminder_id=reminder_id, now=now)
    if plan.action != "send":
        return plan.action
    try:
        provider_id = channel_get(plan.channel).send(key=plan.key, to=plan.to, subject=plan.subject, body=plan.body)
    except PermanentChannelError as exc:
        reminder_send_error(reminder_id=reminder_id, error=str(exc), final=True, now=now)
        return "failed"
    except ChannelError as exc:
        reminder_send_error(reminder_id=reminder_id, error=str(exc), final=False, now=now)
        return "error"
    reminder_send_record(reminder_id=reminder_id, provider_id=provider_id, now=now)
    return "sent"


def subscribed(trial, site, double, *, n: int = 1, quiet=ALWAYS_AWAKE):
    participant = make_participant(trial, site, channels=["push"], quiet=quiet)
    subs = [double.subscribe() for _ in range(n)]
    for sub in subs:
        info = sub.info()
        push_subscription_save(participant=participant, endpoint=info["endpoint"], keys=info["keys"], now=NOON)
    return participant, subs


def due_reminder(participant, *, opens_at: datetime = NOON, now: datetime = NOON) -> Reminder:
    inst = make_instance(participant, opens_at=opens_at - timedelta(minutes=1))
    reminders_plan_due(now=now)
    return Reminder.objects.get(instance=inst, stage="at_open")


# --- (a) the channel: the double verifies VAPID and decrypts the payload ------------------------------------


@pytest.mark.django_db
def test_push_reminder_reaches_the_double_decrypted_and_neutral(trial, site_ldn, push_double, vapid):
    participant, (sub,) = subscribed(trial, site_ldn, push_double)
    reminder = due_reminder(participant)

    assert send_like_the_task(reminder.pk, now=NOON) == "sent"

    (delivery,) = push_double.delivered_to(sub)
    assert delivery.payload == {
        "title": "Your study questionnaire is open",
        "body": PUSH_BODY,
        "url": f"https://trial.example.org/app/survey/{reminder.instance.uuid}",
        "tag": str(reminder.uuid),
    }
    assert delivery.vapid_key == vapid["public"]  # signed with the key browsers subscribed with
    assert delivery.claims["sub"] == vapid["subject"] and delivery.claims["aud"] == push_double.origin
    assert delivery.headers["topic"] == reminder.uuid.hex  # a repeat replaces an undelivered message
    assert push_double.rejected == []
    reminder.refresh_from_db()
    assert reminder.status == "sent" and reminder.channel == "push"
    assert PushSubscription.objects.get(participant=participant).last_used_at is not None
    # A replay of the task after it was sent sends nothing more.
    assert send_like_the_task(reminder.pk, now=NOON + timedelta(minutes=1)) == "already sent"
    assert len(push_double.delivered_to(sub)) == 1


@pytest.mark.django_db
def test_every_device_of_the_participant_gets_the_reminder(trial, site_ldn, push_double, vapid):
    participant, subs = subscribed(trial, site_ldn, push_double, n=2)
    reminder = due_reminder(participant)
    assert send_like_the_task(reminder.pk, now=NOON) == "sent"
    assert [len(push_double.delivered_to(s)) for s in subs] == [1, 1]
    assert Reminder.objects.get(pk=reminder.pk).provider_id == f"webpush-{reminder.uuid}:2/2"


# --- (c) expired subscriptions -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_gone_subscription_is_deleted_and_the_other_device_still_gets_it(trial, site_ldn, push_double, vapid):
    participant, (old, new) = subscribed(trial, site_ldn, push_double, n=2)
    push_double.mark_gone(old)
    reminder = due_reminder(participant)
    assert send_like_the_task(reminder.pk, now=NOON) == "sent"
    assert len(push_double.delivered_to(new)) == 1
    assert list(PushSubscription.objects.filter(participant=participant).values_list("endpoint", flat=True)) == [
        new.endpoint
    ]


@pytest.mark.django_db
def test_last_subscription_gone_fails_the_reminder_for_good_with_the_reason(trial, site_ldn, push_double, vapid):
    participant, (sub,) = subscribed(trial, site_ldn, push_double)
    push_double.mark_gone(sub)
    reminder = due_reminder(participant)
    assert send_like_the_task(reminder.pk, now=NOON) == "failed"
    reminder.refresh_from_db()
    assert reminder.status == "failed" and "expired (404/410)" in reminder.last_error
    assert not PushSubscription.objects.filter(participant=participant).exists()
    assert push_double.deliveries == []
    # Push no longer counts as reachable in /me once its only device is gone.
    from participants.selectors import participant_has_push

    assert participant_has_push(participant=participant) is False


@pytest.mark.django_db
def test_push_service_down_is_transient_and_the_retry_sends_once(trial, site_ldn, push_double, vapid):
    participant, (sub,) = subscribed(trial, site_ldn, push_double)
    reminder = due_reminder(participant)
    push_double.outage = 503
    assert send_like_the_task(reminder.pk, now=NOON) == "error"
    assert Reminder.objects.get(pk=reminder.pk).status not in ("sent", "failed")
    assert PushSubscription.objects.filter(participant=participant).exists()  # not mistaken for "gone"
    push_double.outage = None
    assert send_like_the_task(reminder.pk, now=NOON + timedelta(minutes=1)) == "sent"
    assert len(push_double.delivered_to(sub)) == 1


# --- (e) quiet hours -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_push_respects_quiet_hours_then_sends_when_they_end(trial, site_ldn, push_double, vapid):
    # Quiet 11:30-13:00 London; the survey opens at 12:00 London (11:00 UTC) and stays open four hours.
    participant, (sub,) = subscribed(trial, site_ldn, push_double, quiet=(time(11, 30), time(13, 0)))
    reminder = due_reminder(participant)
    assert send_like_the_task(reminder.pk, now=NOON) == "deferred"
    reminder.refresh_from_db()
    assert reminder.status == "pending" and reminder.due_at == datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    assert push_double.deliveries == []
    assert send_like_the_task(reminder.pk, now=datetime(2026, 6, 10, 12, 0, 5, tzinfo=UTC)) == "sent"
    assert len(push_double.delivered_to(sub)) == 1


# --- (d) the API contract ------------------------------------------------------------------------------------


def test_vapid_key_is_public_and_404_when_not_configured(db, api_client, settings, vapid):
    r = api_client.get("/api/v1/push/vapid-key")
    assert r.status_code == 200 and r.json() == {"public_key": vapid["public"]}
    settings.WEBPUSH_VAPID_PUBLIC_KEY = ""  # derived from the private key when not given
    assert api_client.get("/api/v1/push/vapid-key").json() == {"public_key": vapid["public"]}
    settings.WEBPUSH_VAPID_PRIVATE_KEY = "not-a-key"
    assert api_client.get("/api/v1/push/vapid-key").status_code == 404  # never a 500
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""
    r = api_client.get("/api/v1/push/vapid-key")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_subscription_put_is_idempotent_and_delete_forgets(phone, push_double, vapid):
    info = push_double.subscribe().info()
    before = phone.get("/api/v1/me").json()["channels"]
    assert "push" not in before
    r = phone.put("/api/v1/push/subscription", info, format="json")
    assert r.status_code == 204, r.content
    assert phone.put("/api/v1/push/subscription", info, format="json").status_code == 204
    assert PushSubscription.objects.filter(participant=phone.participant).count() == 1
    assert phone.get("/api/v1/me").json()["channels"] == [*before, "push"]

    assert phone.delete("/api/v1/push/subscription", {"endpoint": info["endpoint"]}, format="json").status_code == 204
    assert not PushSubscription.objects.filter(participant=phone.participant).exists()
    assert "push" not in phone.get("/api/v1/me").json()["channels"]
    unknown = {"endpoint": "https://push.example.net/never-seen"}
    assert phone.delete("/api/v1/push/subscription", unknown, format="json").status_code == 204


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change,field",
    [
        ({"endpoint": "ftp://push.example.net/x"}, "endpoint"),
        ({"endpoint": "http://push.example.net/x"}, "endpoint"),
        ({"endpoint": ""}, "endpoint"),
        ({"endpoint": 42}, "endpoint"),
        ({"keys": {"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh"),
        ({"keys": {"p256dh": "B" + "A" * 86, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh"),  # not on the curve
        ({"keys": {"p256dh": "%%%", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh"),
        ({"keys": {"auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh"),
        ({"keys": "x"}, "keys"),
    ],
)
def test_subscription_bad_input_is_400_and_changes_nothing(phone, push_double, vapid, change, field):
    info = push_double.subscribe().info() | change
    r = phone.put("/api/v1/push/subscription", info, format="json")
    assert r.status_code == 400, r.content
    body = r.json()["error"]
    assert body["code"] == "validation_error" and field in body["fields"], body
    assert not PushSubscription.objects.exists()


@pytest.mark.django_db
def test_bad_auth_secret_is_400(phone, push_double, vapid):
    info = push_double.subscribe().info()
    info["keys"]["auth"] = "AAAA"  # 3 bytes
    r = phone.put("/api/v1/push/subscription", info, format="json")
    assert r.status_code == 400 and "keys.auth" in r.json()["error"]["fields"]


@pytest.mark.django_db
def test_loopback_endpoints_only_when_the_setting_allows(phone, push_double, vapid, settings):
    settings.WEBPUSH_ALLOW_INSECURE_ENDPOINTS = False
    r = phone.put("/api/v1/push/subscription", push_double.subscribe().info(), format="json")
    assert r.status_code == 400 and "endpoint" in r.json()["error"]["fields"]


@pytest.mark.django_db
def test_subscription_needs_a_participant_token(api_client, push_double, vapid):
    r = api_client.put("/api/v1/push/subscription", push_double.subscribe().info(), format="json")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"


@pytest.mark.django_db
def test_browser_resubscribing_same_endpoint_replaces_keys(phone, push_double, vapid):
    sub = push_double.subscribe()
    phone.put("/api/v1/push/subscription", sub.info(), format="json")
    fresh = push_double.subscribe()
    moved = {"endpoint": sub.endpoint, "keys": fresh.info()["keys"]}
    assert phone.put("/api/v1/push/subscription", moved, format="json").status_code == 204
    row = PushSubscription.objects.get(participant=phone.participant)
    assert row.p256dh == fresh.info()["keys"]["p256dh"]


# --- (b) a real Celery worker --------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_sends_a_due_push_reminder_exactly_once(trial, site_ldn, celery_worker_process, worker_env, push_double):
    from surveys.tasks import SEND_TASK, publish, reminders_sweep
    from trialsite import vapid as vapid_keys

    queue, start, _stop = celery_worker_process
    private, public = vapid_keys.generate()
    worker_env.update(
        {
            "WEBPUSH_VAPID_PRIVATE_KEY": private,
            "WEBPUSH_VAPID_PUBLIC_KEY": public,
            "WEBPUSH_VAPID_SUBJECT": "mailto:trial-team@example.org",
            "PUBLIC_BASE_URL": "https://trial.example.org",
        }
    )
    now = timezone.now()
    local = now.astimezone(ZoneInfo("Europe/London"))
    quiet = ((local + timedelta(hours=6)).time().replace(microsecond=0), (local + timedelta(hours=6, minutes=1)).time())
    first, (sub,) = subscribed(trial, site_ldn, push_double, quiet=quiet)
    second, (sentinel,) = subscribed(trial, site_ldn, push_double, quiet=quiet)
    inst = make_instance(first, opens_at=now - timedelta(minutes=1))
    start(pool="solo")
    reminders_sweep(now=timezone.now(), queue=queue)
    reminder = Reminder.objects.get(instance=inst, stage="at_open")
    push_double.wait_for(lambda d: d.deliveries, what="the push reminder at the double")
    (delivery,) = push_double.delivered_to(sub)
    assert delivery.payload["body"] == PUSH_BODY
    assert delivery.payload["url"] == f"https://trial.example.org/app/survey/{inst.uuid}"
    assert delivery.payload["tag"] == str(reminder.uuid)
    assert json.dumps(delivery.payload).lower().count("placebo") == 0

    # Redeliveries of the same send task and another sweep: nothing more. The solo worker handles messages in
    # order, so once the sentinel (sent after them) arrives, the replays have been handled.
    publish(SEND_TASK, [reminder.pk, reminder.pk], arg="reminder_id", queue=queue)
    reminders_sweep(now=timezone.now(), queue=queue)
    other = make_instance(second, opens_at=timezone.now() - timedelta(minutes=1))
    reminders_sweep(now=timezone.now(), queue=queue)
    push_double.wait_for(lambda d: any(x.endpoint == sentinel.endpoint for x in d.deliveries), what="the sentinel")
    assert len(push_double.delivered_to(sub)) == 1
    reminder.refresh_from_db()
    assert reminder.status == "sent" and reminder.channel == "push"
    assert Reminder.objects.get(instance=other, stage="at_open").status in ("sent", "queued")
    assert push_double.rejected == []
