"""The trial dashboard in the admin: enrolment over time, completion by site and week, open safety items and
CONSORT counts, as server-side SVG plots (analytics.svg_chart) and tables. Figures come from
analytics.selectors.dashboard_figures_for (only what the page shows), narrowed to the sites the user reaches;
blinding indices only for the unblinded statistician."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.db.models.functions import TruncWeek
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from participants.models import AlertStatus, Participant, SafetyAlert
from trialsite import roles as R
from trialsite.admin_scoping import STAFF_ROLES, has_any_role
from trialsite.models import Trial

from . import selectors
from .svg_chart import Chart, Series, nice_ticks


def enrolment_plot(rows: list[dict]) -> str:
    return enrolment_figure(rows).svg()


def enrolment_figure(rows: list[dict]) -> Chart:
    total = 0
    points = []
    for row in rows:
        total += row["n"]
        points.append((row["week"].timestamp() / 86400, total))
    # One tick per week (the points' weeks, Monday), labelled as the week they start; thinned when long.
    step = max(1, -(-len(rows) // 10))
    top = max(total * 1.05, 1)
    return Chart(
        title="Participants registered (cumulative, by week)",
        xlabel="week starting (Monday)",
        ylabel="participants",
        series=[Series("registered", points, step=True)] if points else [],
        xticks=[(row["week"].timestamp() / 86400, f"w/c {row['week']:%d %b}") for row in rows[::step]],
        ylim=(0, nice_ticks(top, integer=True)[-1]),  # counts start from 0
        yticks=nice_ticks(top, integer=True),
        rotate_xticks=True,
    )


def completion_plot(by_site_week: dict[str, list[dict]]) -> str:
    weeks = sorted({r["week"] for rows in by_site_week.values() for r in rows})
    step = max(1, -(-len(weeks) // 15))
    return Chart(
        title="Survey completion by site and study week",
        xlabel="study week",
        ylabel="% answered in window",
        series=[
            Series(site, [(r["week"], 100 * (r["rate"] or 0)) for r in rows])
            for site, rows in sorted(by_site_week.items())
        ],
        xticks=[(w, str(w)) for w in weeks[::step]],
        ylim=(0, 105),
        yticks=[0, 20, 40, 60, 80, 100],
        legend=bool(by_site_week),
    ).svg()


def trial_dashboard(request):
    if not has_any_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    trials = list(R.filter_by_trial(Trial.objects.order_by("slug"), request.user, "pk"))
    trial = next((t for t in trials if t.slug == request.GET.get("trial")), trials[0] if trials else None)
    context = {**admin.site.each_context(request), "title": "Trial dashboard", "trials": trials, "trial": trial}
    if trial is not None:
        figures = selectors.dashboard_figures_for(actor=request.user, trial=trial)
        participants = R.filter_by_site(Participant.objects.filter(trial=trial), request.user)
        enrolment = list(
            participants.annotate(week=TruncWeek("registered_at"))
            .values("week")
            .annotate(n=Count("pk"))
            .order_by("week")
        )
        by_site_week = figures["completion_by_site_week"]
        open_alerts = (
            R.filter_by_site(SafetyAlert.objects.filter(participant__trial=trial), request.user, "participant__site")
            .filter(status__in=[AlertStatus.OPEN, AlertStatus.ESCALATED])
            .select_related("participant", "participant__site")
            .order_by("due_at")[:50]
        )
        context.update(
            summary=figures,
            enrolment_svg=mark_safe(enrolment_plot(enrolment)),  # noqa: S308 - SVG drawn here, texts escaped
            completion_svg=mark_safe(completion_plot(by_site_week)),  # noqa: S308
            by_site_week=by_site_week,
            open_alerts=list(open_alerts),
        )
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)


admin.site.add_view("dashboard/", trial_dashboard, name="trial_dashboard", title="Trial dashboard", roles=STAFF_ROLES)

from . import admin_blinding  # noqa: E402, F401 - registers /admin/blinding/
