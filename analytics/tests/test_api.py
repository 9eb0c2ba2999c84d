"""Staff API: export jobs (request, status, download) and the trial summary."""

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.blinding import bang, guess_table, james
from analytics.models import ExportJob
from participants.models import Allocation, Participant
from surveys.models import Response

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim_trial(trial):
    from analytics.simulation import simulate_trial

    simulate_trial(trial=trial, participants=30, days=45, seed=5, now=NOW)
    return trial


@pytest.fixture
def as_user(api_client):
    from trialsite.api.auth import token_issue

    def login(user):
        key, _ = token_issue(user=user, kind="staff", ttl=__import__("datetime").timedelta(hours=1))
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return api_client

    return login


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"


def _error(resp, status, code):
    assert resp.status_code == status, resp.content
    assert resp.json()["error"]["code"] == code


def test_export_request_runs_and_downloads(sim_trial, make_staff, as_user, django_capture_on_commit_callbacks):
    from analytics.services import export_job_run

    stats = make_staff("statistician")
    client = as_user(stats)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = client.post("/api/v1/staff/exports", {"trial": sim_trial.slug, "formats": ["csv"]}, format="json")
    assert resp.status_code == 202, resp.content
    assert resp.json()["status"] == "queued"
    assert len(callbacks) == 1  # the task is enqueued only after commit
    job = ExportJob.objects.get(uuid=resp.json()["id"])
    assert (job.requested_by, job.blinded) == (stats, True)
    status = client.get(f"/api/v1/staff/exports/{job.uuid}").json()
    assert status["status"] == "queued" and status["download_url"] is None

    export_job_run(job_id=job.pk)
    status = client.get(f"/api/v1/staff/exports/{job.uuid}").json()
    assert status["status"] == "done" and status["progress"] == 1.0
    assert status["download_url"].endswith(f"/api/v1/staff/exports/{job.uuid}/download")
    download = client.get(f"/api/v1/staff/exports/{job.uuid}/download")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["export_id"] == str(job.uuid) and manifest["created_by"] == stats.username
    assert "allocation.csv" not in zf.namelist()

    # A redelivered task finds the job done and changes nothing.
    job.refresh_from_db()
    finished = job.finished_at
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.finished_at == finished

    # Only the requester sees or downloads it.
    other = as_user(make_staff("statistician"))
    _error(other.get(f"/api/v1/staff/exports/{job.uuid}"), 404, "not_found")
    _error(other.get(f"/api/v1/staff/exports/{job.uuid}/download"), 404, "not_found")


def test_a_failed_export_is_recorded(sim_trial, make_staff, as_user, settings, tmp_path):
    from analytics.services import export_job_run

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.EXPORT_ROOT = blocker / "exports"
    client = as_user(make_staff("statistician"))
    job_id = client.post("/api/v1/staff/exports", {"trial": sim_trial.slug}, format="json").json()["id"]
    job = export_job_run(job_id=ExportJob.objects.get(uuid=job_id).pk)
    assert job.status == "failed" and job.error and not job.sha256
    body = client.get(f"/api/v1/staff/exports/{job_id}").json()
    assert body["status"] == "failed" and body["download_url"] is None
    _error(client.get(f"/api/v1/staff/exports/{job_id}/download"), 409, "conflict")


def test_download_before_done_is_a_conflict(sim_trial, make_staff, as_user):
    client = as_user(make_staff("statistician"))
    with_id = client.post("/api/v1/staff/exports", {"trial": sim_trial.slug}, format="json").json()["id"]
    _error(client.get(f"/api/v1/staff/exports/{with_id}/download"), 409, "conflict")


def test_unblinded_export_needs_the_role_and_a_reason(trial, make_staff, as_user):
    body = {"trial": trial.slug, "blinded": False, "reason": "DSMB meeting"}
    _error(
        as_user(make_staff("statistician")).post("/api/v1/staff/exports", body, format="json"), 403, "permission_denied"
    )
    unblinded = as_user(make_staff("unblinded_statistician"))
    _error(unblinded.post("/api/v1/staff/exports", {**body, "reason": ""}, format="json"), 403, "permission_denied")
    resp = unblinded.post("/api/v1/staff/exports", body, format="json")
    assert resp.status_code == 202
    assert ExportJob.objects.get(uuid=resp.json()["id"]).reason == "DSMB meeting"
    assert not ExportJob.objects.filter(blinded=False, reason="").exists()


def test_an_unblinded_bundle_is_not_downloaded_once_the_role_is_revoked(sim_trial, make_staff, as_user):
    from analytics.services import export_job_run
    from trialsite.models import RoleGrant

    user = make_staff("unblinded_statistician")
    client = as_user(user)
    body = {"trial": sim_trial.slug, "blinded": False, "reason": "DSMB meeting"}
    job_id = client.post("/api/v1/staff/exports", body, format="json").json()["id"]
    export_job_run(job_id=ExportJob.objects.get(uuid=job_id).pk)
    assert client.get(f"/api/v1/staff/exports/{job_id}/download").status_code == 200
    RoleGrant.objects.filter(user=user).delete()
    user.groups.clear()
    _error(client.get(f"/api/v1/staff/exports/{job_id}/download"), 403, "permission_denied")


def test_export_refusals(trial, make_staff, as_user, site_ldn):
    _error(
        as_user(make_staff("coordinator", site=site_ldn)).post(
            "/api/v1/staff/exports", {"trial": trial.slug}, format="json"
        ),
        403,
        "permission_denied",
    )
    client = as_user(make_staff("statistician"))
    _error(client.post("/api/v1/staff/exports", {"trial": "nope"}, format="json"), 404, "not_found")
    _error(
        client.post("/api/v1/staff/exports", {"trial": trial.slug, "formats": ["xls"]}, format="json"),
        400,
        "validation_error",
    )
    _error(
        client.post("/api/v1/staff/exports", {"trial": trial.slug, "blinded": "maybe"}, format="json"),
        400,
        "validation_error",
    )
    _error(
        client.post("/api/v1/staff/exports", {"trial": trial.slug}, format="json", HTTP_IDEMPOTENCY_KEY="twice"),
        400,
        "validation_error",
    )
    _error(client.get("/api/v1/staff/exports/7d3f1a58-8a1e-4f5e-9d55-3a0c6a1f0000"), 404, "not_found")
    api = as_user(make_staff("statistician"))
    api.credentials()
    _error(api.post("/api/v1/staff/exports", {"trial": trial.slug}, format="json"), 401, "not_authenticated")


def test_exportjob_constraints_both_ways(trial):
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    job = ExportJob(trial=trial, blinded=False, reason="")
    with pytest.raises(ValidationError):
        job.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.create(trial=trial, blinded=False, reason="")
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.create(trial=trial, status="done")
    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.create(trial=trial, progress=1.5)
    ExportJob.objects.create(trial=trial, blinded=False, reason="DSMB")


@pytest.mark.worker
def test_export_job_runs_in_a_real_worker(sim_trial, make_staff, celery_worker_process):
    import time

    from celery import current_app

    queue, start, _stop = celery_worker_process
    user = make_staff("statistician")
    job = ExportJob.objects.create(trial=sim_trial, requested_by=user, formats=["csv", "parquet"])
    start()
    current_app.send_task("analytics.tasks.export_job_run", kwargs={"job_id": job.pk}, queue=queue)
    current_app.send_task("analytics.tasks.export_job_run", kwargs={"job_id": job.pk}, queue=queue)  # duplicate
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in ("done", "failed"):
            break
        time.sleep(0.3)
    assert job.status == "done", job.error
    names = zipfile.ZipFile(job.file_path).namelist()
    assert "responses.parquet" in names


# --- summary ------------------------------------------------------------------------------------------------


def test_summary_for_a_blinded_statistician(sim_trial, make_staff, as_user):
    resp = as_user(make_staff("statistician")).get(f"/api/v1/staff/analytics/{sim_trial.slug}/summary")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    parts = Participant.objects.filter(trial=sim_trial)
    consort = body["consort"]
    assert consort["screened"] == parts.count()
    assert consort["randomised"] == parts.filter(randomised_at__isnull=False).count()
    assert consort["screen_failed"] == parts.filter(status="screen_failed").count()
    assert consort["withdrawn"] == parts.filter(withdrawn_at__isnull=False).count()
    assert {r["site"] for r in consort["by_site"]} == set(parts.values_list("site__code", flat=True)) != set()
    assert 0 < body["completion"]["overall"]["rate"] <= 1
    assert 0 < body["adherence"]["overall"]["rate"] <= 1
    assert [w["week"] for w in body["completion"]["by_week"]] == sorted(
        w["week"] for w in body["completion"]["by_week"]
    )
    assert {r["instrument"] for r in body["latency"]} >= {"phq9", "daily-mood"}
    guesses = body["blinding"]["guesses"]
    assert (
        sum(g["active"] + g["placebo"] + g["dont_know"] for g in guesses)
        == Response.objects.filter(instrument__slug="blinding-guess").count()
    )
    assert "indices" not in body["blinding"]
    text = json.dumps(body).lower()
    assert "psilocybin" not in text and '"arm"' not in text


def test_summary_indices_for_the_unblinded_statistician_match_the_data(sim_trial, make_staff, as_user):
    body = as_user(make_staff("unblinded_statistician")).get(f"/api/v1/staff/analytics/{sim_trial.slug}/summary").json()
    indices = body["blinding"]["indices"]
    assert indices
    arms = {a.participant_id: a.slot.arm.code for a in Allocation.objects.select_related("slot__arm")}
    point = indices[-1]
    pairs = [
        (r.answers["guess"], "placebo" if arms[r.participant_id] == "B" else "active")
        for r in Response.objects.filter(
            instrument__slug="blinding-guess", instance__schedule_key=point["schedule_key"]
        )
        if r.instance.study_day == point["planned_day"]
    ]
    table = guess_table(pairs)
    assert point["table"] == table
    assert point["james"]["index"] == pytest.approx(james(table).index)
    assert point["bang"]["active"]["index"] == pytest.approx(bang(table)["active"].index)


def test_summary_is_scoped_to_the_coordinators_site(sim_trial, make_staff, as_user, site_ldn):
    body = (
        as_user(make_staff("coordinator", site=site_ldn))
        .get(f"/api/v1/staff/analytics/{sim_trial.slug}/summary")
        .json()
    )
    assert {r["site"] for r in body["consort"]["by_site"]} == {"LDN"}
    assert body["consort"]["screened"] == Participant.objects.filter(trial=sim_trial, site=site_ldn).count()
    assert {r["site"] for r in body["completion"]["by_site"]} == {"LDN"}


def test_summary_refusals(trial, make_staff, as_user, django_user_model):
    _error(as_user(make_staff()).get(f"/api/v1/staff/analytics/{trial.slug}/summary"), 403, "permission_denied")
    _error(as_user(make_staff("statistician")).get("/api/v1/staff/analytics/nope/summary"), 404, "not_found")


def test_a_trial_without_a_protocol_yet_has_an_empty_summary_and_dashboard(trial, make_staff, as_user, client):
    from trialsite.models import Trial

    new = Trial.objects.create(slug="aaa-new", title="Added in the admin, no protocol loaded yet")
    for role in ("statistician", "unblinded_statistician"):  # roles are held in a trial: this one
        resp = as_user(make_staff(role, trial=new)).get("/api/v1/staff/analytics/aaa-new/summary")
        assert resp.status_code == 200, resp.content
        assert resp.json()["adherence"]["by_site"] == []
        assert resp.json()["blinding"].get("indices", []) == []
    client.force_login(make_staff("trial_manager", trial=new))
    assert client.get("/admin/dashboard/").status_code == 200  # the first trial by slug is shown by default
    assert client.get("/admin/dashboard/", {"trial": "aaa-new"}).status_code == 200


def test_summary_query_count_does_not_grow_with_the_trial(trial, make_staff, as_user):
    from analytics.simulation import simulate_trial

    client = as_user(make_staff("unblinded_statistician"))
    url = f"/api/v1/staff/analytics/{trial.slug}/summary"
    simulate_trial(trial=trial, participants=6, days=10, seed=1, now=NOW)
    client.get(url)  # warm-up: the token's last-use stamp is written on first use only
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    simulate_trial(trial=trial, participants=30, days=20, seed=2, now=NOW)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small)
