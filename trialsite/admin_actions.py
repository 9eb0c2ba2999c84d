"""Admin actions that ask for a form first (a reason, a note, a scope), shared by every app's admin."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse

# Refusals a service may raise for one row; apps add their own workflow errors (participants: WorkflowError).
REFUSALS: tuple[type[Exception], ...] = (ValidationError, PermissionDenied, ValueError)


def error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def intermediate(
    modeladmin, request, queryset, *, form_class, title, action, apply, form_kwargs=None, refusals=REFUSALS
):
    """Render a form for an action on the selected rows; on a valid POST call `apply(obj, data)` per row. A
    refusal (an exception in `refusals`) is shown for its row; the other rows go on."""
    form_kwargs = form_kwargs or {}
    if "confirm" in request.POST:
        form = form_class(request.POST, **form_kwargs)
        if form.is_valid():
            done = 0
            for obj in queryset:
                try:
                    apply(obj, form.cleaned_data)
                    done += 1
                except refusals as exc:
                    modeladmin.message_user(request, f"{obj}: {error_text(exc)}", messages.ERROR)
            if done:
                modeladmin.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
            return None
    else:
        form = form_class(**form_kwargs)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "objects": queryset,
        "action": action,
        "opts": modeladmin.model._meta,
        "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
    }
    return TemplateResponse(request, "admin/trialsite/action_form.html", context)
