"""The staff admin site: two-factor login when required, a trial dashboard and the audit trail.

Every ModelAdmin registered here narrows rows to the user's sites and hides arms from blinded users
(trialsite.admin_scoping). Apps add extra pages with `admin.site.add_view(...)`, so the site itself
never imports the apps that provide them (dependency direction: analytics → participants → trialsite).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.urls import path
from django_otp.admin import OTPAdminAuthenticationForm


class TrialsiteAdminSite(admin.AdminSite):
    site_header = "trialsite staff"
    site_title = "trialsite"
    index_title = "Trial administration"
    index_template = "admin/trialsite/index.html"

    def __init__(self, name: str = "admin"):
        super().__init__(name)
        self._extra_views: list[tuple[str, object, str, str, tuple[str, ...] | None]] = []

    # --- two-factor authentication -------------------------------------------------------------------------
    @property
    def login_form(self):
        # Read at request time so tests (and deployments) can flip TRIALSITE_REQUIRE_2FA.
        return OTPAdminAuthenticationForm if settings.TRIALSITE_REQUIRE_2FA else AdminAuthenticationForm

    @property
    def login_template(self):
        return "otp/admin111/login.html" if settings.TRIALSITE_REQUIRE_2FA else None

    def has_permission(self, request) -> bool:
        if not super().has_permission(request):
            return False
        if settings.TRIALSITE_REQUIRE_2FA:
            is_verified = getattr(request.user, "is_verified", None)
            return bool(is_verified and is_verified())
        return True

    # --- registration ---------------------------------------------------------------------------------------
    def register(self, model_or_iterable, admin_class=None, **options):
        # pghistory.admin registers its unscoped events admin for every user; the audit trail replaces it
        # (scoped, blinded, filterable, exportable) — see trialsite.admin_audit.
        from django.db.models.base import ModelBase

        models = [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else list(model_or_iterable)
        if any(m._meta.label == "pghistory.Events" for m in models):
            from .admin_audit import AuditTrailAdmin

            if admin_class is None or not issubclass(admin_class, AuditTrailAdmin):
                admin_class = AuditTrailAdmin
        return super().register(model_or_iterable, admin_class, **options)

    # --- what a coordinator reads -----------------------------------------------------------------------------
    # The audit trail is pghistory's Events model: named for what it is, not for the library that records it.
    AUDIT_APP_NAME = "Audit trail"
    AUDIT_MODEL_NAME = "Changes to trial data (who, when, what, why)"

    # Libraries' apps under what they hold (their own labels read "AXES", "OTP_STATIC", "OTP_TOTP").
    LIBRARY_APP_NAMES = {
        "axes": "Sign-in attempts and lock-outs",
        "otp_static": "Two-factor backup codes",
        "otp_totp": "Two-factor authenticator apps",
    }
    LIBRARY_MODEL_NAMES = {
        ("otp_static", "StaticDevice"): "Backup code sets",
        ("otp_totp", "TOTPDevice"): "Authenticator apps",
    }

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        for app in app_list:
            if app["app_label"] == "pghistory":
                app["name"] = self.AUDIT_APP_NAME
                for model in app["models"]:
                    if model["object_name"] == "Events":
                        model["name"] = self.AUDIT_MODEL_NAME
            app["name"] = self.LIBRARY_APP_NAMES.get(app["app_label"], app["name"])
            for model in app["models"]:
                model["name"] = self.LIBRARY_MODEL_NAMES.get((app["app_label"], model["object_name"]), model["name"])
        app_list.sort(key=lambda app: app["name"].lower())  # in the order of the names shown
        return app_list

    def add_view(self, route: str, view, *, name: str, title: str, roles: tuple[str, ...] | None = None) -> None:
        """Add a staff page at /admin/<route>; listed on the index for users holding one of `roles`."""
        self._extra_views.append((route, view, name, title, roles))

    def get_urls(self):
        extra = [path(route, self.admin_view(view), name=name) for route, view, name, _, _ in self._extra_views]
        return extra + super().get_urls()

    def each_context(self, request):
        from .roles import has_role

        context = super().each_context(request)
        user = request.user
        context["extra_pages"] = [
            {"name": name, "title": title}
            for _, _, name, title, roles in self._extra_views
            if getattr(user, "is_superuser", False) or roles is None or has_role(user, *roles)
        ]
        return context
