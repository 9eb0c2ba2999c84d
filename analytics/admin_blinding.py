"""The blinding page of the admin (/admin/blinding/): per time point (guess session or period end).

Unblinded roles: correct-guess rate per arm with Wilson intervals across time points, and for one chosen time
point (or crossover period) the outcome by arm × guess ("do scores follow the guess or the capsule?") and the
CGRC (effect against correct-guess rate, read at chance), as server-side SVG plots with their tables.
Blinded roles: the overall guess distribution only (no arm anywhere on the page)."""

from __future__ import annotations

import io

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from trialsite import policy
from trialsite import roles as R
from trialsite.admin_scoping import STAFF_ROLES, has_any_role
from trialsite.models import Trial

from . import selectors
from .blinding_selectors import blinding_session_figures

COLOURS = {"active": "#b5523b", "placebo": "#417690"}


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def guess_distribution_plot(rows: list[dict]) -> str:
    """Stacked shares of active / placebo / don't know guesses per time point: no arm."""
    fig = Figure(figsize=(6, 2.6))
    ax = fig.add_subplot()
    labels = [f"day {r['planned_day']}\n{r['schedule_key']}" for r in rows]
    bottom = [0.0] * len(rows)
    for key, colour in (("active", "#8c8c8c"), ("placebo", "#c8c8c8"), ("dont_know", "#eeeeee")):
        totals = [(r["active"] + r["placebo"] + r["dont_know"]) or 1 for r in rows]
        shares = [100 * r[key] / t for r, t in zip(rows, totals, strict=True)]
        ax.bar(range(len(rows)), shares, bottom=bottom, color=colour, edgecolor="#555", label=key.replace("_", " "))
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_xticks(range(len(rows)), labels, fontsize="small")
    ax.set_ylabel("% of guesses")
    ax.set_ylim(0, 100)
    ax.set_title("Participants' guesses per time point (all arms together)")
    if rows:
        ax.legend(loc="lower right", fontsize="small")
    return _svg(fig)


def cgr_plot(points: list[dict]) -> str:
    fig = Figure(figsize=(6, 2.8))
    ax = fig.add_subplot()
    for offset, arm in ((-0.08, "active"), (0.08, "placebo")):
        xs, ys, lo, hi = [], [], [], []
        for n, p in enumerate(points):
            c = p["correct_guess_rate"][arm]
            if c["rate"] is not None:
                xs.append(n + offset)
                ys.append(100 * c["rate"])
                lo.append(100 * (c["rate"] - c["lower"]))
                hi.append(100 * (c["upper"] - c["rate"]))
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, color=COLOURS[arm], label=f"{arm} arm")
    ax.axhline(50, color="#999", linestyle="--", linewidth=1)
    ax.set_xticks(
        range(len(points)), [f"day {p['planned_day']}\n{p['schedule_key']}" for p in points], fontsize="small"
    )
    ax.set_ylim(0, 100)
    ax.set_ylabel("% correct (95% Wilson)")
    ax.set_title("Correct-guess rate per arm (dashed: chance)")
    if points:
        ax.legend(loc="lower right", fontsize="small")
    return _svg(fig)


def outcome_plot(point: dict, outcome: str | None) -> str:
    fig = Figure(figsize=(6, 2.8))
    ax = fig.add_subplot()
    guesses = ["active", "placebo", "dont_know"]
    for offset, arm in ((-0.1, "active"), (0.1, "placebo")):
        xs, ys, err = [], [], []
        for n, guess in enumerate(guesses):
            cell = next(c for c in point["outcome_by_arm_guess"] if c["arm"] == arm and c["guess"] == guess)
            if cell["mean"] is not None:
                xs.append(n + offset)
                ys.append(cell["mean"])
                err.append(0 if cell["lower"] is None else cell["mean"] - cell["lower"])
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, color=COLOURS[arm], label=f"took {arm}")
    ax.set_xticks(range(3), ["guessed active", "guessed placebo", "don't know"])
    ax.set_ylabel(outcome or "outcome")
    ax.set_title("Outcome by arm × guess (mean, 95% CI)")
    ax.legend(loc="best", fontsize="small")
    return _svg(fig)


def cgrc_plot(point: dict) -> str:
    c = point["cgrc"]
    fig = Figure(figsize=(6, 2.8))
    ax = fig.add_subplot()
    if c["curve"]:
        ax.plot([x["cgr"] * 100 for x in c["curve"]], [x["expected"] for x in c["curve"]], "-", color="#417690")
        ax.plot([c["trial_cgr"] * 100], [c["naive_effect"]], "s", color="#b5523b", label="naive (trial's CGR)")
        ax.errorbar(
            [c["target"] * 100],
            [c["estimate"]],
            yerr=[[c["estimate"] - c["lower"]], [c["upper"] - c["estimate"]]],
            fmt="o",
            capsize=3,
            color="#222",
            label="CGRC at chance",
        )
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, c["reason"] or "not estimable", ha="center", va="center", transform=ax.transAxes)
    ax.axhline(0, color="#999", linewidth=1)
    ax.axvline(50, color="#999", linestyle="--", linewidth=1)
    ax.set_xlim(0, 100)
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.set_xlabel("correct-guess rate (%)")
    ax.set_ylabel("active − placebo")
    ax.set_title("Correct Guess Rate Curve (Szigeti et al. 2023)")
    return _svg(fig)


def blinding_page(request):
    if not has_any_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    trials = list(Trial.objects.order_by("slug"))
    trial = next((t for t in trials if t.slug == request.GET.get("trial")), trials[0] if trials else None)
    unblinded = trial is not None and policy.can(request.user, policy.ARMS_VIEW, trial)  # in this trial only
    context = {
        **admin.site.each_context(request),
        "title": "Blinding per session",
        "trials": trials,
        "trial": trial,
        "unblinded": unblinded,
    }
    if trial is not None:
        site_ids = R.site_ids(request.user)
        ids = sorted(site_ids) if site_ids is not None else None
        guesses = selectors.blinding_guess_distribution(trial=trial, site_ids=ids)
        context.update(guesses=guesses, guesses_svg=mark_safe(guess_distribution_plot(guesses)))  # noqa: S308
        if unblinded:
            try:
                figures = blinding_session_figures(trial=trial, site_ids=ids, outcome=request.GET.get("outcome"))
            except ValueError as exc:
                figures = blinding_session_figures(trial=trial, site_ids=ids)
                context["outcome_error"] = str(exc)
            choices = [(f"day{p['planned_day']}-{p['schedule_key']}", p) for p in figures["time_points"]]
            choices += [(f"period{p['period']}", p) for p in figures["periods"]]
            chosen_key = request.GET.get("point") or (choices[-1][0] if choices else None)
            chosen = dict(choices).get(chosen_key)
            context.update(
                figures=figures,
                choices=[k for k, _ in choices],
                chosen_key=chosen_key,
                chosen=chosen,
                cgr_svg=mark_safe(cgr_plot(figures["time_points"])),  # noqa: S308 - SVG drawn by matplotlib here
            )
            if chosen is not None:
                context.update(
                    outcome_svg=mark_safe(outcome_plot(chosen, figures["outcome"])),  # noqa: S308
                    cgrc_svg=mark_safe(cgrc_plot(chosen)),  # noqa: S308
                )
    return TemplateResponse(request, "admin/analytics/blinding.html", context)


admin.site.add_view(
    "blinding/", blinding_page, name="blinding_sessions", title="Blinding per session", roles=STAFF_ROLES
)
