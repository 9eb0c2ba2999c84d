"""Two web processes and two workers against one PostgreSQL: the same write never doubles an effect.

Two gunicorn masters (two sync workers each, on two ports) serve the real WSGI app against this test's database;
two Celery workers consume the export queue. The same request is sent twice to each web process by threads
released together by a barrier (four concurrent copies, one per gunicorn worker), as a phone retrying on a flaky
network behind a load balancer would, or a coordinator double-clicking:

- a survey submission (same Idempotency-Key): one response and one set of item answers per instance, one audit
  insert each, the contract's 201 once and 200 with the same body for the others;
- an offline /sync batch of responses and dose logs, and the dose log endpoint: the same, per item;
- an export job requested on both web processes with one Idempotency-Key, and its task delivered twice to two
  export workers: one job, one run, one bundle;
- "Randomise" clicked twice on each web process in the admin: one allocation, one slot taken.

Each race checks that the copies overlapped in time (else the scenario tested nothing), then the positive
signal (the effect is there), then the absence of a second one.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pghistory.models
import pytest
import requests
from django.utils import timezone

from conftest import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.timeout(180)]

COPIES_PER_WEB = 2  # one per gunicorn worker of each web process
DAILY = {"mood": 55, "anxiety": 20, "energy": 60, "focus": 70, "dose_taken": True}


@dataclass
class Reply:
    status: int
    body: dict | str
    started: float
    ended: float
    cookies: dict


def race(calls) -> list[Reply]:
    """Run each `call(session)` in its own thread, all released by one barrier; the replies in call order."""
    barrier = threading.Barrier(len(calls))
    replies: list[Reply | BaseException | None] = [None] * len(calls)

    def run(n, call):
        try:
            with requests.Session() as session:
                barrier.wait(timeout=30)
                started = time.monotonic()
                r = call(session)
                ended = time.monotonic()
            try:
                body = r.json()
            except ValueError:
                body = r.text
            replies[n] = Reply(r.status_code, body, started, ended, dict(r.cookies))
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the test's thread
            replies[n] = exc

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
        assert reply is not None, "a request never returned"
    return replies


def overlapped(replies: list[Reply]) -> bool:
    """Every copy was in flight at one common instant (the last start came before the first end)."""
    return max(r.started for r in replies) < min(r.ended for r in replies)


def on_both(bases: list[str], send) -> list:
    """The calls of one race: `send(session, base)` twice on each web process."""
    return [lambda s, b=base: send(s, b) for base in bases for _ in range(COPIES_PER_WEB)]


def inserts(label: str, ids) -> int:
    """Audit-trail inserts (pghistory triggers) of rows `ids` of model `label`."""
    return pghistory.models.Events.objects.filter(
        pgh_obj_model=label, pgh_label="insert", pgh_obj_id__in=[str(i) for i in ids]
    ).count()


@pytest.fixture
def two_webs(web_process, worker_env):
    """Two gunicorn masters (two workers each) against this test's database; their base URLs."""
    return [web_process(workers=COPIES_PER_WEB)[1] for _ in range(2)]


@pytest.fixture
def phone(trial, site_ldn):
    """A consented participant and the phone's bearer token."""
    from surveys.tests.factories import make_participant, sign_consent

    participant, key = make_participant(trial=trial, site=site_ldn)
    sign_consent(participant, at=timezone.now() - timedelta(days=2))
    return participant, {"Authorization": f"Bearer {key}"}


def open_instances(participant, n: int, prefix: str):
    from surveys.tests.factories import make_instance

    opens = timezone.now() - timedelta(hours=1)
    return [
        make_instance(participant, slug="daily-mood", opens_at=opens, schedule_key=f"{prefix}{i}") for i in range(n)
    ]


def test_one_submission_sent_to_both_web_processes_at_once_is_stored_once(two_webs, phone, fault_report):
    from surveys.models import ItemAnswer, Response

    participant, auth = phone
    instances = open_instances(participant, 8, "twoweb_")
    authored = timezone.now().isoformat()
    overlaps = 0
    for instance in instances:
        key = str(uuid.uuid4())

        def send(session, base, instance=instance, key=key):
            return session.post(
                f"{base}/api/v1/surveys/{instance.uuid}/response",
                json={"answers": DAILY, "authored": authored},
                headers={**auth, "Idempotency-Key": key},
                timeout=30,
            )

        replies = race(on_both(two_webs, send))
        overlaps += overlapped(replies)
        assert sorted(r.status for r in replies) == [200, 200, 200, 201], [(r.status, r.body) for r in replies]
        assert all(r.body == replies[0].body for r in replies)  # the replays answer with the first body
        assert replies[0].body["instance"] == str(instance.uuid)
    assert overlaps >= len(instances) // 2, f"only {overlaps} of {len(instances)} races overlapped"

    # Positive signal: every instance has its response; then no second one, no extra answers, one audit insert each.
    responses = list(Response.objects.filter(instance__in=instances))
    assert {r.instance_id for r in responses} == {i.pk for i in instances}
    fault_report("two-web survey submissions", expected=len(instances), delivered=len(responses))
    assert len(responses) == len(instances)
    answers = ItemAnswer.objects.filter(response__in=responses)
    assert answers.count() == len(instances) * len(DAILY)
    assert inserts("surveys.Response", [r.pk for r in responses]) == len(instances)
    assert inserts("surveys.ItemAnswer", answers.values_list("pk", flat=True)) == len(instances) * len(DAILY)


def test_one_sync_batch_and_dose_logs_sent_to_both_web_processes_are_stored_once(two_webs, phone, fault_report):
    from surveys.models import DoseLog, Response

    participant, auth = phone
    instances = open_instances(participant, 6, "twoweb_sync_")
    now = timezone.now()
    responses = [
        {"kind": "response", "idempotency_key": str(uuid.uuid4()), "instance": str(i.uuid), "answers": DAILY}
        | {"authored": now.isoformat()}
        for i in instances
    ]
    doses = [
        {"kind": "dose", "idempotency_key": str(uuid.uuid4()), "taken_at": (now - timedelta(hours=h)).isoformat()}
        for h in range(1, 5)
    ]
    batch = {"items": responses + doses}

    def sync(session, base):
        return session.post(f"{base}/api/v1/sync", json=batch, headers=auth, timeout=60)

    replies = race(on_both(two_webs, sync))
    assert overlapped(replies), "the four batches never ran at the same time"
    assert [r.status for r in replies] == [200] * 4, [r.body for r in replies]
    for n, item in enumerate(batch["items"]):
        results = [r.body["results"][n] for r in replies]
        assert {x["idempotency_key"] for x in results} == {item["idempotency_key"]}
        assert sorted(x["status"] for x in results) == [200, 200, 200, 201], results
        assert len({x["id"] for x in results}) == 1  # one row, named the same in every reply

    # The dose log endpoint on its own: the same dose (same key) sent four times at once.
    dose_key = str(uuid.uuid4())

    def log_dose(session, base):
        return session.post(
            f"{base}/api/v1/doses",
            json={"taken_at": (now - timedelta(minutes=30)).isoformat(), "note": "with breakfast"},
            headers={**auth, "Idempotency-Key": dose_key},
            timeout=30,
        )

    dose_replies = race(on_both(two_webs, log_dose))
    assert overlapped(dose_replies)
    assert sorted(r.status for r in dose_replies) == [200, 200, 200, 201], [r.body for r in dose_replies]
    assert all(r.body == dose_replies[0].body for r in dose_replies)

    stored = list(Response.objects.filter(instance__in=instances))
    logged = list(DoseLog.objects.filter(participant=participant))
    assert {r.instance_id for r in stored} == {i.pk for i in instances}  # positive signal first
    assert {str(d.idempotency_key) for d in logged} == {d["idempotency_key"] for d in doses} | {dose_key}
    fault_report("two-web sync responses+doses", expected=len(instances) + 5, delivered=len(stored) + len(logged))
    assert len(stored) == len(instances) and len(logged) == len(doses) + 1
    assert inserts("surveys.Response", [r.pk for r in stored]) == len(instances)
    assert inserts("surveys.DoseLog", [d.pk for d in logged]) == len(doses) + 1


def _outstanding(queue: str) -> int:
    """Messages of `queue` still in the broker: waiting, or taken by a worker and not yet acknowledged (the export
    task acknowledges late, after it returned)."""
    import json

    from trialsite.celery import app

    with app.connection_for_read() as conn:
        client = conn.default_channel.client
        waiting = client.llen(queue)
        unacked = sum(
            1 for raw in client.hvals("unacked") if json.loads(raw)[2] == queue
        )  # kombu's redis transport: [message, exchange, routing key]
    return waiting + unacked


def test_one_export_requested_on_both_web_processes_and_run_by_two_workers_is_one_bundle(
    two_webs_exports, trial, make_staff, settings, tmp_path, fault_report
):
    from analytics.models import ExportJob
    from analytics.services import export_job_publish
    from analytics.simulation import simulate_trial
    from trialsite.api.auth import token_issue
    from trialsite.models import ApiToken

    bases, queue, start_worker, root, pause = two_webs_exports
    simulate_trial(trial=trial, participants=4, days=6, seed=5)
    statistician = make_staff("statistician")
    secret, _ = token_issue(user=statistician, kind=ApiToken.STAFF, ttl=timedelta(hours=1))
    auth = {"Authorization": f"Bearer {secret}"}
    key = str(uuid.uuid4())

    def request_export(session, base):
        body = {"trial": trial.slug, "blinded": True, "formats": ["csv"]}
        return session.post(f"{base}/api/v1/staff/exports", json=body, headers={**auth, "Idempotency-Key": key})

    replies = race(on_both(bases, request_export))
    assert overlapped(replies)
    assert [r.status for r in replies] == [202] * 4, [r.body for r in replies]
    assert len({r.body["id"] for r in replies}) == 1
    job = ExportJob.objects.get(uuid=replies[0].body["id"])  # positive signal: the job is recorded
    assert ExportJob.objects.filter(trial=trial).count() == 1
    # Another export under the same key is refused, not merged into this one.
    other = requests.post(
        f"{bases[1]}/api/v1/staff/exports",
        json={"trial": trial.slug, "blinded": True, "formats": ["csv", "parquet"]},
        headers={**auth, "Idempotency-Key": key},
        timeout=30,
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_mismatch"

    # The run pauses in the middle of the bundle while the task is delivered twice more (a broker redelivery or a
    # sweep's re-publish) to two workers: every delivery is consumed while the first run holds the job.
    hold = pause / f"{job.uuid}.hold"
    hold.touch()
    start_worker()
    start_worker()
    wait_for((pause / f"{job.uuid}.attempt-1.running").exists, timeout=60, what="the first run")
    for _ in range(2):
        assert export_job_publish(job_id=job.pk)
    wait_for(lambda: _outstanding(queue) == 1, timeout=30, what="the duplicate deliveries consumed")
    hold.unlink()

    def finished():
        job.refresh_from_db()
        return job.status in ("done", "failed")

    wait_for(finished, timeout=60, what="the export to finish")
    assert job.status == "done", job.error
    wait_for(lambda: _outstanding(queue) == 0, timeout=30, what="every delivery acknowledged")
    bundles = sorted(p.name for p in root.iterdir())
    fault_report("two-web export job, two workers", expected=1, delivered=len(bundles))
    assert bundles == [f"{job.uuid}.zip"]
    assert job.attempts == 1 and not (pause / f"{job.uuid}.attempt-2.running").exists()
    assert ExportJob.objects.count() == 1 and inserts("analytics.ExportJob", [job.pk]) == 1


@pytest.fixture
def two_webs_exports(web_process, celery_worker_process, worker_env, settings, tmp_path):
    """Two web processes publishing export runs to this test's private queue; two export workers can be started on
    it. Yields (bases, queue, start_worker, export root, pause directory of the export test hook)."""
    queue, start, _stop = celery_worker_process
    root, pause = tmp_path / "exports", tmp_path / "pause"
    pause.mkdir()
    settings.EXPORT_ROOT = root
    settings.EXPORT_QUEUE = queue
    worker_env.update({"EXPORT_ROOT": str(root), "EXPORT_TEST_PAUSE_DIR": str(pause), "EXPORT_QUEUE": queue})
    bases = [web_process(workers=COPIES_PER_WEB)[1] for _ in range(2)]
    yield bases, queue, start, root, pause
    from trialsite.celery import app

    with app.connection_for_read() as conn:
        conn.default_channel.client.delete(queue)


def test_randomise_double_clicked_on_both_web_processes_allocates_once(
    two_webs, trial, site_ldn, make_staff, fault_report
):
    from django.test import Client

    from participants.models import Allocation, AllocationSlot, Participant
    from participants.services import allocation_list_generate
    from trialsite.tests.admin_data import add_participant

    coordinator = make_staff("coordinator", site=site_ldn)
    people = [add_participant(trial=trial, site=site_ldn, coordinator=coordinator, n_instances=0) for _ in range(3)]
    allocation_list_generate(trial=trial, seed=11, per_stratum=8)
    browser = Client()
    browser.force_login(coordinator)  # the session is in the database: both web processes know it
    session = {"sessionid": browser.cookies["sessionid"].value}
    changelist = "/admin/participants/participant/"
    page = requests.get(f"{two_webs[0]}{changelist}", cookies=session, timeout=30)
    assert page.status_code == 200 and people[0].study_id in page.text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    cookies = {**session, "csrftoken": page.cookies["csrftoken"]}

    for participant in people:

        def click(s, base, participant=participant):
            form = {"action": "randomise", "_selected_action": participant.pk, "csrfmiddlewaretoken": csrf}
            return s.post(f"{base}{changelist}", data=form, cookies=cookies, allow_redirects=False, timeout=30)

        replies = race(on_both(two_webs, click))
        assert overlapped(replies)
        assert [r.status for r in replies] == [302] * 4, [r.body for r in replies]
        # What each click shows next: the changelist with its message (the messages cookie of its reply).
        shown = [
            requests.get(f"{two_webs[0]}{changelist}", cookies={**cookies, **r.cookies}, timeout=30).text
            for r in replies
        ]
        assert sum(f"{participant.study_id}: randomised." in text for text in shown) == 1
        assert sum(f"{participant.study_id} is already randomised." in text for text in shown) == 3

    allocations = list(Allocation.objects.filter(participant__in=people))
    assert {a.participant_id for a in allocations} == {p.pk for p in people}  # positive signal first
    fault_report("two-web randomise double-click", expected=len(people), delivered=len(allocations))
    assert len(allocations) == len(people)
    assert AllocationSlot.objects.filter(allocation_list__trial=trial, taken=True).count() == len(people)
    assert inserts("participants.Allocation", [a.pk for a in allocations]) == len(people)
    assert all(p.status == "randomised" for p in Participant.objects.filter(pk__in=[p.pk for p in people]))
