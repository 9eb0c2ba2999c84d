"""The trial dashboard in the admin: enrolment over time, completion by site and week, open safety items and
CONSORT counts, as server-side SVG plots (matplotlib, Agg) and tables. Figures come from analytics.selectors,
narrowed to the sites the user reaches; blinding indices only for the unblinded statistician."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from django.contrib import admin  # noqa: E402
from django.core.exceptions import PermissionDenied  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.db.models.functions import TruncWeek  # noqa: E402
from django.template.response import TemplateResponse  # noqa: E402
from django.utils.safestring import mark_safe  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from participants.models import AlertStatus, Participant, SafetyAlert  # noqa: E402
from trialsite import roles as R  # noqa: E402
from trialsite.admin_scoping import STAFF_ROLES, has_any_role  # noqa: E402
from trialsite.models import Trial  # noqa: E402

from . import selectors  # noqa: E402


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def enrolment_plot(rows: list[dict]) -> str:
    return _svg(enrolment_figure(rows))


def enrolment_figure(rows: list[dict]) -> Figure:
    fig = Figure(figsize=(6, 2.6))
    ax = fig.add_subplot()
    total = 0
    xs, ys = [], []
    for row in rows:
        total += row["n"]
        xs.append(row["week"])
        ys.append(total)
    if xs:
        ax.step(xs, ys, where="post", color="#417690")
        ax.plot(xs, ys, "o", color="#417690", markersize=3)
        # One tick per week (the points' weeks, Monday), labelled as the week they start; thinned when long.
        step = max(1, -(-len(xs) // 10))
        ax.set_xticks(xs[::step], [f"w/c {x:%d %b}" for x in xs[::step]])
    ax.set_title("Participants registered (cumulative, by week)")
    ax.set_xlabel("week starting (Monday)")
    ax.set_ylabel("participants")
    ax.set_ylim(bottom=0, top=max(ys[-1] * 1.05, 1) if ys else 1)  # counts start from 0
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.autofmt_xdate()
    return fig


def completion_plot(by_site_week: dict[str, list[dict]]) -> str:
    fig = Figure(figsize=(6, 2.6))
    ax = fig.add_subplot()
    for site, rows in sorted(by_site_week.items()):
        ax.plot([r["week"] for r in rows], [100 * (r["rate"] or 0) for r in rows], marker="o", label=site)
    ax.set_title("Survey completion by site and study week")
    ax.set_xlabel("study week")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("% answered in window")
    ax.set_ylim(0, 105)
    if by_site_week:
        ax.legend(loc="lower left", fontsize="small")
    return _svg(fig)


def trial_dashboard(request):
    if not has_any_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    trials = list(Trial.objects.order_by("slug"))
    trial = next((t for t in trials if t.slug == request.GET.get("trial")), trials[0] if trials else None)
    context = {**admin.site.each_context(request), "title": "Trial dashboard", "trials": trials, "trial": trial}
    if trial is not None:
        site_ids = R.site_ids(request.user)
        ids = sorted(site_ids) if site_ids is not None else None
        summary = selectors.trial_summary(trial=trial, site_ids=ids, unblinded=R.is_unblinded(request.user))
        participants = R.filter_by_site(Participant.objects.filter(trial=trial), request.user)
        enrolment = list(
            participants.annotate(week=TruncWeek("registered_at"))
            .values("week")
            .annotate(n=Count("pk"))
            .order_by("week")
        )
        by_site_week: dict[str, list[dict]] = {}
        for row in summary["consort"]["by_site"]:
            site = row["site"]
            site_pk = participants.filter(site__code=site).values_list("site_id", flat=True).first()
            if site_pk is not None:
                by_site_week[site] = selectors.completion(trial=trial, site_ids=[site_pk], by="week")
        open_alerts = (
            R.filter_by_site(SafetyAlert.objects.filter(participant__trial=trial), request.user, "participant__site")
            .filter(status__in=[AlertStatus.OPEN, AlertStatus.ESCALATED])
            .select_related("participant", "participant__site")
            .order_by("due_at")[:50]
        )
        context.update(
            summary=summary,
            enrolment_svg=mark_safe(enrolment_plot(enrolment)),  # noqa: S308 - SVG drawn by matplotlib here
            completion_svg=mark_safe(completion_plot(by_site_week)),  # noqa: S308
            by_site_week=by_site_week,
            open_alerts=list(open_alerts),
        )
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)


admin.site.add_view("dashboard/", trial_dashboard, name="trial_dashboard", title="Trial dashboard", roles=STAFF_ROLES)

from . import admin_blinding  # noqa: E402, F401 - registers /admin/blinding/
