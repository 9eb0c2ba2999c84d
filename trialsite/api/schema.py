"""OpenAPI: bearer-token authentication for drf-spectacular (imported in TrialsiteConfig.ready), and the
contract's error body (`ErrorBody`, `error_responses`) that every app's views declare."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "trialsite.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Participant tokens come from POST /api/v1/enrol; staff tokens from POST /api/v1/staff/token.",
        }


ErrorBody = inline_serializer(
    name="ErrorBody",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False
                ),
            },
        )
    },
)


ERROR_TEXT = {
    400: "validation_error (or invalid_enrolment_code)",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    409: "conflict / not_consented / withdrawn",
    429: "throttled",
}


def error_responses(texts: dict[int, str], *codes: int) -> dict:
    """{status: the error body, described by texts[status]} for extend_schema's `responses`."""
    return {code: OpenApiResponse(ErrorBody, description=texts.get(code, "")) for code in codes}


def errors(*codes: int) -> dict:
    """The error responses with the API's usual descriptions (ERROR_TEXT)."""
    return error_responses(ERROR_TEXT, *codes)
