"""OpenAPI: describe bearer-token authentication for drf-spectacular (imported in TrialsiteConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "trialsite.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Participant tokens come from POST /api/v1/enrol; staff tokens from POST /api/v1/staff/token.",
        }
