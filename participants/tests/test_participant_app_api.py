"""Server side of the participant app: the enrolment link in both QR codes, and safety_info in /me."""

from __future__ import annotations

import pytest
import segno
from django.urls import reverse

from participants.enrolment_link import enrolment_qr_svg, enrolment_url
from participants.models import Participant
from participants.tests.factories import ELIGIBLE
from participants.tests.test_admin_workflows import ELIGIBLE as ADMIN_ELIGIBLE
from participants.tests.test_admin_workflows import _register

pytestmark = pytest.mark.django_db


@pytest.fixture
def phone(register, api_client):
    from participants.services import participant_enrol

    participant, code = register(contact={"email": "p@example.org"})
    _, token = participant_enrol(code=code)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client


def test_enrolment_url_puts_the_code_in_the_fragment(settings):
    settings.PUBLIC_BASE_URL = "https://trial.example.org/"
    assert enrolment_url("K7QF-M2XD") == "https://trial.example.org/app/enrol#K7QF-M2XD"
    # The SVG encodes exactly that text (segno is deterministic for the same text and options).
    assert enrolment_qr_svg("K7QF-M2XD") == segno.make(
        "https://trial.example.org/app/enrol#K7QF-M2XD", error="m"
    ).svg_inline(scale=6)
    assert enrolment_qr_svg("K7QF-M2XD") != segno.make("trialsite:enrol:K7QF-M2XD", error="m").svg_inline(scale=6)


def test_api_qr_code_encodes_the_app_enrol_url(api_client, make_staff, site_ldn, settings):
    settings.PUBLIC_BASE_URL = "https://trial.example.org"
    api_client.force_authenticate(make_staff("coordinator", site=site_ldn))
    body = {"trial": "microdose-mood", "site": "LDN", "timezone": "Europe/London", "eligibility": dict(ELIGIBLE)}
    created = api_client.post("/api/v1/staff/participants", body, format="json").json()
    svg = api_client.get(created["enrolment_qr_url"])
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    expected = segno.make(f"https://trial.example.org/app/enrol#{created['enrolment_code']}", error="m")
    assert svg.content.decode() == expected.svg_inline(scale=6)


def test_admin_qr_code_encodes_the_app_enrol_url(client, trial, site_ldn, make_staff, settings):
    settings.PUBLIC_BASE_URL = "https://trial.example.org"
    client.force_login(make_staff("coordinator", site=site_ldn))
    _register(client, trial, site_ldn, **ADMIN_ELIGIBLE)
    participant = Participant.objects.get()
    page = client.get(reverse("admin:participants_participant_code", args=[participant.pk])).content.decode()
    code = page.split('id="enrolment-code">')[1].split("<")[0]
    expected = segno.make(f"https://trial.example.org/app/enrol#{code}", error="m").svg_inline(scale=6)
    assert expected in page


def test_development_base_url_follows_port():
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "trialsite.settings.development", "PORT": "8123"}
    env.pop("PUBLIC_BASE_URL", None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; print(s.PUBLIC_BASE_URL)",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "http://127.0.0.1:8123", out.stderr


def test_me_carries_the_protocols_safety_info_in_the_participants_language(phone):
    body = phone.get("/api/v1/me").json()
    info = body["safety_info"]
    assert info["language"] == "en" and "study team" in info["contact"] and "999" in info["helpline"]
    es = phone.get("/api/v1/me?lang=es").json()["safety_info"]
    assert es["language"] == "es" and "equipo del estudio" in es["contact"]
    header = phone.get("/api/v1/me", HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9,en;q=0.5").json()["safety_info"]
    assert header["language"] == "es"
    assert phone.get("/api/v1/me?lang=fr").json()["safety_info"]["language"] == "en"  # not provided: default
    for text in (info["contact"], info["helpline"], es["contact"], es["helpline"]):
        assert "placebo" not in text.lower() and "psilocybin" not in text.lower()
