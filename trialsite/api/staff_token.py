"""Staff tokens for scripts (POST /api/v1/staff/token): the sign-in service and its view.

`staff_token_issue` checks the password (through axes, so failures count towards the lock-out), refuses
participants' users, requires the one-time password of a confirmed device (or refuses when 2FA is required
and none is set up), and issues a staff bearer token.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from trialsite import principals
from trialsite.api.auth import token_issue
from trialsite.api.errors import ApiError, Forbidden
from trialsite.api.schema import errors
from trialsite.api.throttling import ClientAddressThrottle
from trialsite.models import ApiToken


def staff_token_issue(*, request, username: str, password: str, otp: str = ""):
    """(the token's secret, the stored ApiToken) for a staff user; raises ApiError (401) or Forbidden (403).

    `request` is the Django request (axes reads the client address from it and flags a lock-out on it)."""
    from axes.exceptions import AxesBackendPermissionDenied
    from django_otp import devices_for_user

    refusal = ApiError("Wrong username or password.", code="not_authenticated")
    refusal.status_code = 401
    try:
        user = authenticate(request=request, username=username, password=password)
    except AxesBackendPermissionDenied:
        user = None
    if getattr(request, "axes_locked_out", False):
        # Answer in the API's error shape; clearing the flag stops AxesMiddleware from replacing this answer
        # with its HTML lock-out page.
        request.axes_locked_out = False
        raise Forbidden("Too many failed sign-ins: this account is locked for a while.")
    if user is None or not user.is_active or not (user.is_staff or user.is_superuser):
        raise refusal
    if principals.is_participant(user):
        raise refusal
    devices = list(devices_for_user(user, confirmed=True))
    if devices:
        otp = (otp or "").strip()
        if not otp or not any(device.verify_token(otp) for device in devices):
            bad_otp = ApiError(
                "A valid one-time password is required.", code="not_authenticated", fields={"otp": ["Invalid."]}
            )
            bad_otp.status_code = 401
            raise bad_otp
    elif settings.TRIALSITE_REQUIRE_2FA:
        raise Forbidden("Two-factor authentication is required: set up an authenticator in the admin first.")
    return token_issue(user=user, kind=ApiToken.STAFF, ttl=settings.API_TOKEN_TTL_STAFF)


class StaffTokenApi(APIView):
    """A staff bearer token for scripts: username, password and, with a confirmed authenticator, a one-time
    password (staff_token_issue)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientAddressThrottle]
    throttle_scope = "staff_token"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffTokenInput"

        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=256, trim_whitespace=False)
        otp = serializers.CharField(required=False, allow_blank=True, max_length=16)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffTokenOutput"

        token = serializers.CharField()
        expires_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="staff_token",
        request=InputSerializer,
        responses={201: OutputSerializer, **errors(400, 401, 403, 429)},
        auth=[],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, token = staff_token_issue(
            request=request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
            otp=data.validated_data.get("otp") or "",
        )
        return Response({"token": key, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED)
