"""What a coordinator reads says what it is: the admin index's headings and names, pinned as shown."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.contrib import admin

pytestmark = pytest.mark.django_db


def index_names(client) -> tuple[list[str], list[str]]:
    html = client.get("/admin/").content.decode()
    apps = re.findall(r'<caption>\s*<a [^>]*class="section"[^>]*>([^<]+)</a>', html)
    models = re.findall(r'<th scope="row" id="[^"]+">\s*<a [^>]*>([^<]+)</a>', html)
    return [a.strip() for a in apps], [m.strip() for m in models]


def test_admin_index_as_a_data_manager(client, trial, make_staff):
    client.force_login(make_staff("data_manager"))
    apps, models = index_names(client)
    assert apps == ["Audit trail", "Participants", "Surveys", "Trials and sites"]
    assert models == [
        "Changes to trial data (who, when, what, why)",
        "Adverse events",
        "Consent documents",
        "Consent signatures",
        "Contact details views",
        "Coordinator blinding guesses",
        "Participants",
        "Safety alerts",
        "Substance records",
        "Withdrawals",
        "Coordinator tasks",
        "Data queries",
        "Dose logs",
        "Instruments",
        "Item answers",
        "Prompt events",
        "Reminders",
        "Responses",
        "Side effects",
        "Survey instances",
        "Outbox messages",
        "Protocol versions",
        "Sites",
        "Staff login events",
        "Trials",
    ]


def test_admin_index_as_a_coordinator(client, trial, site_ldn, make_staff):
    client.force_login(make_staff("coordinator", site=site_ldn))
    apps, models = index_names(client)
    assert "Audit trail" in apps and not any("pghistory" in a.lower() for a in apps)
    assert "Coordinator blinding guesses" in models
    visible = re.sub(r"<[^>]+>", " ", client.get("/admin/").content.decode()).lower()  # the text, not URLs
    assert "pghistory" not in visible and "guesss" not in visible and "accesss" not in visible
    assert "audit trail" in client.get("/admin/pghistory/events/").content.decode().lower()


def test_no_registered_model_has_a_machine_made_name():
    for model in admin.site._registry:
        meta = model._meta
        plural, singular = str(meta.verbose_name_plural), str(meta.verbose_name)
        assert not (singular.endswith("s") and plural == singular + "s"), f"{meta.label}: {plural!r}"
        assert not re.search(r"[a-z][A-Z]|_", singular), f"{meta.label}: {singular!r}"


def test_enrolment_plot_has_week_ticks_and_starts_at_zero():
    from analytics.admin import enrolment_figure

    monday = datetime(2026, 9, 14, tzinfo=UTC)
    rows = [{"week": monday + timedelta(weeks=w), "n": n} for w, n in enumerate([12, 3, 5, 1])]
    chart = enrolment_figure(rows)
    assert chart.ylim[0] == 0 and chart.yticks[0] == 0 and chart.ylim[1] >= 21
    labels = [label for _, label in chart.xticks]
    assert labels == ["w/c 14 Sep", "w/c 21 Sep", "w/c 28 Sep", "w/c 05 Oct"]  # one per weekly point, no daily ones
    svg = chart.svg()
    assert svg.startswith("<svg") and all(f">{label}</text>" in svg for label in labels)
    many = [{"week": monday + timedelta(weeks=w), "n": 1} for w in range(30)]
    assert len(enrolment_figure(many).xticks) <= 10


def test_admin_index_as_a_superuser_names_the_library_apps(client, trial):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("root", "root@example.org", "x-long-password-1"))
    apps, models = index_names(client)
    assert apps == [
        "Audit trail",
        "Authentication and Authorization",
        "Participants",
        "Sign-in attempts and lock-outs",
        "Surveys",
        "Trials and sites",
        "Two-factor authenticator apps",
        "Two-factor backup codes",
    ]
    assert {"Backup code sets", "Authenticator apps", "Access attempts"} <= set(models)
    assert not {"Static devices", "TOTP devices"} & set(models)
    visible = re.sub(r"<[^>]+>", " ", client.get("/admin/").content.decode())
    assert not re.search(r"\b(?:axes|otp_static|otp_totp|AXES|OTP_STATIC|OTP_TOTP)\b", visible)
    assert "Two-factor backup codes" in client.get("/admin/otp_static/").content.decode()  # the app's own page


def test_dashboard_tables_say_study_week(client, trial, make_staff):
    client.force_login(make_staff("trial_manager"))
    html = client.get("/admin/dashboard/").content.decode()
    assert "Completion by site and study week" in html and "<th>study week</th>" in html
    assert "<th>week</th>" not in html


def _headers_and_filters(html: str) -> tuple[list[str], list[str]]:
    thead = html.split("<thead>")[1].split("</thead>")[0] if "<thead>" in html else ""
    headers = [re.sub(r"<[^>]+>|\s+", " ", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", thead, re.S)]
    filters = [unescape(t).strip() for t in re.findall(r"<summary>\s*By ([^<]+)</summary>", html)]
    return [h for h in headers if h], filters


def test_changelist_columns_and_filters_read_as_words(client, trial, site_ldn, make_staff):
    client.force_login(make_staff("data_manager"))
    audit, audit_filters = _headers_and_filters(client.get("/admin/pghistory/events/").content.decode())
    assert audit == ["When", "Table", "Record id", "Event", "User", "Reason", "Changes"]
    assert "when" in audit_filters and not any("pgh" in f for f in audit_filters)
    _, withdrawal_filters = _headers_and_filters(client.get("/admin/participants/withdrawal/").content.decode())
    assert "participant's own request" in withdrawal_filters and "by participant" not in withdrawal_filters
    client.force_login(make_staff("monitor"))
    _, login_filters = _headers_and_filters(client.get("/admin/trialsite/staffloginevent/").content.decode())
    assert "when" in login_filters and "at" not in login_filters


def test_a_participants_screening_reads_as_the_protocols_criteria(client, trial, site_ldn, make_staff):
    from participants.tests.factories import ParticipantFactory
    from trialsite.protocol.services import protocol_current

    criteria = protocol_current(trial).eligibility
    participant = ParticipantFactory(trial=trial, site=site_ldn)
    client.force_login(make_staff("coordinator", site=site_ldn))
    html = unescape(client.get(f"/admin/participants/participant/{participant.pk}/change/").content.decode())
    shown = re.findall(r"<li><strong>(yes|no)</strong> · ([^<]+)</li>", html)
    assert shown == [("yes", c.text) for c in criteria] and len(shown) >= 3
    assert '{"' not in html.split('class="eligibility"')[1][:200]  # not the stored JSON
