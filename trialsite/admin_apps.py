"""The admin app configuration: installs trialsite's admin site (2FA, scoping, extra pages) as `admin.site`.

Kept in its own light module: it is imported while apps load, before any model exists.
"""

from django.contrib.admin.apps import AdminConfig


class TrialsiteAdminConfig(AdminConfig):
    default_site = "trialsite.admin_site.TrialsiteAdminSite"
