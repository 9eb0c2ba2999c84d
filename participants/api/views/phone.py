"""Participant (phone) and staff API of the participants app. Thin: parse, call one service, shape output."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.db.models import Max
from django.http import HttpResponse
from django.urls import reverse
from django.utils.timezone import now as utc_now
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from trialsite import roles
from trialsite.api.auth import token_issue, token_revoke
from trialsite.api.errors import ApiError, Forbidden, NotFound, ValidationFailed
from trialsite.models import ApiToken, Site, Trial
from trialsite.protocol.services import protocol_current

from ... import hooks, services
from ...enrolment_link import enrolment_qr_svg
from ...models import Participant, ParticipantStatus, WithdrawalScope
from ...selectors import consent_status
from ..common import ClientAddressThrottle, ParticipantsApiView, ResultsPagination, errors
from ..permissions import IsParticipant, IsStaff

# --- shared output ------------------------------------------------------------------------------------------


class ConsentStateSerializer(serializers.Serializer):
    version = serializers.CharField(allow_null=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    needs_consent = serializers.BooleanField()


@extend_schema_field(
    {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "22:00", "nullable": True}
)
class LocalTimeField(serializers.TimeField):
    """A local wall-clock time written HH:MM (the participant's zone), not an ISO time with an offset."""

    def __init__(self, **kwargs):
        kwargs.setdefault("format", "%H:%M")
        kwargs.setdefault("input_formats", ["%H:%M"])
        super().__init__(**kwargs)


class QuietHoursSerializer(serializers.Serializer):
    start = LocalTimeField(allow_null=True)
    end = LocalTimeField(allow_null=True)


class SafetyInfoSerializer(serializers.Serializer):
    contact = serializers.CharField(help_text="who to call (the study team)")
    helpline = serializers.CharField(help_text="emergency and helpline numbers")
    language = serializers.CharField(help_text="the language of these texts")


class MeOutputSerializer(serializers.Serializer):
    """The participant's own view. Never the arm or dose-unit contents (participants.blinding)."""

    id = serializers.UUIDField(source="uuid")
    study_id = serializers.CharField()
    trial = serializers.CharField(source="trial.slug")
    site = serializers.CharField(source="site.code")
    status = serializers.CharField()
    timezone = serializers.CharField()
    study_day = serializers.IntegerField(allow_null=True)
    consent = ConsentStateSerializer()
    quiet_hours = QuietHoursSerializer()
    channels = serializers.ListField(
        child=serializers.ChoiceField(choices=["email", "sms", "push"]),
        help_text="the chosen channels that can reach the participant (push: once a device has subscribed)",
    )
    safety_info = SafetyInfoSerializer(
        allow_null=True, help_text="the trial's safety contact and helpline (null when the protocol has none)"
    )


def safety_info(participant: Participant, request=None) -> dict | None:
    """The protocol's `safety_contact` in the participant's language (?lang=, else Accept-Language)."""
    from trialsite.protocol.i18n import localized, negotiate, text_languages

    protocol = protocol_current(participant.trial)
    block = protocol.safety_contact
    if block is None:
        return None
    available = sorted(set(text_languages(block.contact)) | set(text_languages(block.helpline)))
    language = protocol.language
    if request is not None:
        language = negotiate(
            available=available,
            default=protocol.language,
            lang=request.query_params.get("lang") if hasattr(request, "query_params") else None,
            accept_language=request.headers.get("Accept-Language"),
        )
    return {
        "contact": localized(block.contact, language, protocol.language),
        "helpline": localized(block.helpline, language, protocol.language),
        "language": language,
    }


def me_data(participant: Participant, request=None) -> dict:
    state = consent_status(participant=participant)
    start, end = participant.quiet_hours_start, participant.quiet_hours_end
    if start is None or end is None:
        default = protocol_current(participant.trial).reminders.quiet_hours
        start, end = (default.start, default.end) if default else (None, None)
    return MeOutputSerializer(
        {
            "uuid": participant.uuid,
            "study_id": participant.study_id,
            "trial": participant.trial,
            "site": participant.site,
            "status": participant.status,
            "timezone": participant.timezone,
            "study_day": participant.study_day(),
            "consent": {
                "version": state.current.version if state.current else None,
                "signed_at": state.last_signed.signed_at if state.last_signed else None,
                "needs_consent": state.needs_consent,
            },
            "quiet_hours": {"start": start, "end": end},
            "channels": _reachable_channels(participant),
            "safety_info": safety_info(participant, request),
        }
    ).data


def _reachable_channels(participant: Participant) -> list[str]:
    # Push counts once a device can be reached (a Web Push subscription or a legacy token).
    from ...selectors import participant_has_push

    channels = list(participant.channels)
    if "push" in channels and not participant_has_push(participant=participant):
        channels.remove("push")
    return channels


# --- participant API ----------------------------------------------------------------------------------------


class EnrolApi(ParticipantsApiView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ClientAddressThrottle]
    throttle_scope = "enrol"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EnrolInput"

        code = serializers.CharField(max_length=32, help_text="XXXX-XXXX; dash and case do not matter")
        device = serializers.DictField(required=False, help_text="platform, app_version, timezone")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EnrolOutput"

        token = serializers.CharField()
        participant = MeOutputSerializer()

    @extend_schema(
        operation_id="enrol",
        request=InputSerializer,
        responses={201: OutputSerializer, **errors(400, 429)},
        auth=[],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        if not data.is_valid():
            raise services.InvalidEnrolmentCode()
        device = {k: str(v)[:128] for k, v in (data.validated_data.get("device") or {}).items() if isinstance(k, str)}
        participant, key = services.participant_enrol(code=data.validated_data["code"], device=device)
        return Response({"token": key, "participant": me_data(participant, request)}, status=status.HTTP_201_CREATED)


class LogoutApi(ParticipantsApiView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="logout", request=None, responses={204: None, **errors(401)})
    def post(self, request):
        if isinstance(request.auth, ApiToken):
            token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(ParticipantsApiView):
    permission_classes = [IsParticipant]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MeInput"

        timezone = serializers.CharField(required=False, help_text="IANA zone name")
        quiet_hours = QuietHoursSerializer(required=False, allow_null=True)
        channels = serializers.ListField(child=serializers.CharField(), required=False)
        push_token = serializers.CharField(required=False, allow_blank=True, max_length=4096)

    @extend_schema(operation_id="me_get", responses={200: MeOutputSerializer, **errors(401, 403)})
    def get(self, request):
        return Response(me_data(request.participant, request))

    @extend_schema(
        operation_id="me_update", request=InputSerializer, responses={200: MeOutputSerializer, **errors(400, 401, 403)}
    )
    def patch(self, request):
        if not isinstance(request.data, dict):
            raise ValidationFailed("A JSON object.")
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        kwargs = {}
        mapping = {"timezone": "tz", "quiet_hours": "quiet_hours", "channels": "channels", "push_token": "push_token"}
        for field, arg in mapping.items():
            if field in request.data:
                kwargs[arg] = request.data[field]
        participant = services.participant_settings_update(participant=request.participant, **kwargs)
        return Response(me_data(participant, request))


class ConsentApi(ParticipantsApiView):
    permission_classes = [IsParticipant]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentOutput"

        version = serializers.CharField()
        title = serializers.CharField()
        body = serializers.CharField()
        sha256 = serializers.CharField()
        signed_at = serializers.DateTimeField(allow_null=True)

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentInput"

        version = serializers.CharField(max_length=32)
        sha256 = serializers.CharField(max_length=64)
        agree = serializers.BooleanField()
        typed_name = serializers.CharField(max_length=255)

    class SignedSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsentSigned"

        id = serializers.UUIDField(source="uuid")
        version = serializers.CharField(source="document.version")
        sha256 = serializers.CharField()
        signed_at = serializers.DateTimeField()

    @extend_schema(operation_id="consent_get", responses={200: OutputSerializer, **errors(401, 403, 404)})
    def get(self, request):
        state = consent_status(participant=request.participant)
        document = state.current or (state.last_signed.document if state.last_signed else None)
        if document is None:
            raise NotFound("There is no consent document for this trial.")
        signed = state.signed if state.current is not None else state.last_signed
        return Response(
            self.OutputSerializer(
                {
                    "version": document.version,
                    "title": document.title,
                    "body": document.body,
                    "sha256": document.sha256,
                    "signed_at": signed.signed_at if signed else None,
                }
            ).data
        )

    @extend_schema(
        operation_id="consent_sign",
        request=InputSerializer,
        responses={201: SignedSerializer, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token = request.auth if isinstance(request.auth, ApiToken) else None
        signature = services.consent_sign(
            participant=request.participant,
            version=data.validated_data["version"],
            sha256=data.validated_data["sha256"],
            agree=data.validated_data["agree"],
            typed_name=data.validated_data["typed_name"],
            device=token.device if token else {},
        )
        return Response(self.SignedSerializer(signature).data, status=status.HTTP_201_CREATED)


class WithdrawInputSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=WithdrawalScope.values)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=4000)


class WithdrawOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="uuid")
    study_id = serializers.CharField(source="participant.study_id")
    scope = serializers.CharField()
    withdrawn_at = serializers.DateTimeField()


class WithdrawApi(ParticipantsApiView):
    permission_classes = [IsParticipant]

    @extend_schema(
        operation_id="withdraw",
        request=WithdrawInputSerializer,
        responses={201: WithdrawOutputSerializer, **errors(400, 401, 403, 409)},
    )
    def post(self, request):
        data = WithdrawInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.participant_withdraw(
            participant=request.participant,
            scope=data.validated_data["scope"],
            reason=data.validated_data.get("reason", ""),
            by_participant=True,
        )
        return Response(WithdrawOutputSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


# --- participant API: Web Push ---------------------------------------------------------------------------


class PushVapidKeyApi(ParticipantsApiView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PushVapidKey"

        public_key = serializers.CharField(help_text="base64url uncompressed P-256 point (applicationServerKey)")

    @extend_schema(
        tags=["participant: push"],
        operation_id="push_vapid_key",
        responses={200: OutputSerializer, **errors(404)},
        auth=[],
    )
    def get(self, request):
        from trialsite.vapid import configured_public_key

        try:
            key = configured_public_key()
        except ValueError:  # a malformed private key (production's system check refuses it at start)
            key = None
        if not key:
            raise NotFound("Web Push is not configured on this server.")
        return Response({"public_key": key})


class PushSubscriptionApi(ParticipantsApiView):
    permission_classes = [IsParticipant]

    class KeysSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PushSubscriptionKeys"

        p256dh = serializers.CharField(help_text="base64url, 65-byte uncompressed P-256 point")
        auth = serializers.CharField(help_text="base64url, 16 bytes")

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PushSubscriptionInput"

        endpoint = serializers.CharField(max_length=2048, help_text="https URL of the push service")
        keys = serializers.DictField(child=serializers.CharField(), help_text="p256dh and auth (base64url)")

    class DeleteSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PushSubscriptionDelete"

        endpoint = serializers.CharField(max_length=2048)

    def _body(self, request) -> dict:
        if not isinstance(request.data, dict):
            raise ValidationFailed("A JSON object.")
        return request.data

    @extend_schema(
        tags=["participant: push"],
        operation_id="push_subscription_put",
        request=InputSerializer,
        responses={204: None, **errors(400, 401, 403)},
    )
    def put(self, request):
        from ...services.push import push_subscription_save

        body = self._body(request)
        self.InputSerializer(data=body).is_valid(raise_exception=True)
        push_subscription_save(participant=request.participant, endpoint=body["endpoint"], keys=body["keys"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        tags=["participant: push"],
        operation_id="push_subscription_delete",
        request=DeleteSerializer,
        responses={204: None, **errors(400, 401, 403)},
    )
    def delete(self, request):
        from ...services.push import push_subscription_delete

        body = self._body(request)
        self.DeleteSerializer(data=body).is_valid(raise_exception=True)
        push_subscription_delete(participant=request.participant, endpoint=body["endpoint"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- staff API ----------------------------------------------------------------------------------------------


class StaffTokenApi(ParticipantsApiView):
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
        from axes.exceptions import AxesBackendPermissionDenied
        from django_otp import devices_for_user

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        refusal = ApiError("Wrong username or password.", code="not_authenticated")
        refusal.status_code = 401
        try:
            user = authenticate(
                request=request._request,
                username=data.validated_data["username"],
                password=data.validated_data["password"],
            )
        except AxesBackendPermissionDenied:
            user = None
        if getattr(request._request, "axes_locked_out", False):
            # Answer in the API's error shape; clearing the flag stops AxesMiddleware from replacing this answer
            # with its HTML lock-out page.
            request._request.axes_locked_out = False
            raise Forbidden("Too many failed sign-ins: this account is locked for a while.")
        if user is None or not user.is_active or not (user.is_staff or user.is_superuser):
            raise refusal
        if Participant.objects.filter(user=user).exists():
            raise refusal
        devices = list(devices_for_user(user, confirmed=True))
        if devices:
            otp = (data.validated_data.get("otp") or "").strip()
            if not otp or not any(device.verify_token(otp) for device in devices):
                bad_otp = ApiError(
                    "A valid one-time password is required.", code="not_authenticated", fields={"otp": ["Invalid."]}
                )
                bad_otp.status_code = 401
                raise bad_otp
        elif settings.TRIALSITE_REQUIRE_2FA:
            raise Forbidden("Two-factor authentication is required: set up an authenticator in the admin first.")
        key, token = token_issue(user=user, kind=ApiToken.STAFF, ttl=settings.API_TOKEN_TTL_STAFF)
        return Response({"token": key, "expires_at": token.expires_at}, status=status.HTTP_201_CREATED)


def _staff_participants(user):
    return roles.filter_by_site(Participant.objects.all(), user)


def _staff_participant(user, pk) -> Participant:
    """A participant the staff user may see (any role at the site), else 404 not_found."""
    participant = _staff_participants(user).select_related("trial", "site").filter(uuid=pk).first()
    if participant is None:
        raise NotFound("No such participant.")
    return participant


def _require_coordinator(user, participant: Participant) -> None:
    if not roles.can_reach_site(user, participant.site_id, roles=[roles.COORDINATOR]) or not roles.has_role(
        user, roles.COORDINATOR
    ):
        raise Forbidden("Only a coordinator of the participant's site may do this.")


def _qr_url(request, participant: Participant) -> str:
    return request.build_absolute_uri(reverse("participants:staff-enrolment-qr", kwargs={"pk": participant.uuid}))


class StaffAdherenceSerializer(serializers.Serializer):
    class Meta:
        ref_name = "StaffParticipantsAdherence"

    surveys_due = serializers.IntegerField(help_text="instances whose window has closed, or answered early")
    surveys_answered = serializers.IntegerField()
    completion = serializers.FloatField(allow_null=True, help_text="answered ÷ due")
    doses_planned = serializers.IntegerField(help_text="dose days planned up to the participant's local today")
    doses_logged = serializers.IntegerField()
    dose_adherence = serializers.FloatField(allow_null=True, help_text="min(logged, planned) ÷ planned")


class StaffParticipantsApi(ParticipantsApiView):
    permission_classes = [IsStaff]
    pagination_class = ResultsPagination

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffParticipantsInput"

        trial = serializers.SlugField(max_length=64)
        site = serializers.CharField(max_length=16)
        timezone = serializers.CharField(max_length=64)
        eligibility = serializers.DictField(child=serializers.BooleanField())
        contact = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)

    class CreatedSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffParticipantsCreated"

        id = serializers.UUIDField()
        study_id = serializers.CharField()
        status = serializers.CharField()
        enrolment_code = serializers.CharField(allow_null=True)
        enrolment_qr_url = serializers.URLField(allow_null=True)

    class ListItemSerializer(serializers.Serializer):
        """No arm, no dose-unit contents, no contact details. Adherence comes from the installed providers
        (participants.hooks.adherence: the surveys app), computed for the whole page at once."""

        class Meta:
            ref_name = "StaffParticipantsListItem"

        id = serializers.UUIDField(source="uuid")
        study_id = serializers.CharField()
        trial = serializers.CharField(source="trial.slug")
        site = serializers.CharField(source="site.code")
        status = serializers.CharField()
        withdrawal_scope = serializers.CharField()
        timezone = serializers.CharField()
        eligible = serializers.BooleanField()
        registered_at = serializers.DateTimeField()
        enrolled_at = serializers.DateTimeField(allow_null=True)
        consented_at = serializers.DateTimeField(allow_null=True)
        randomised_at = serializers.DateTimeField(allow_null=True)
        day0 = serializers.DateField(allow_null=True)
        withdrawn_at = serializers.DateTimeField(allow_null=True)
        adherence = serializers.SerializerMethodField()

        @extend_schema_field(StaffAdherenceSerializer(allow_null=True))
        def get_adherence(self, obj):
            figures = self.context.get("adherence", {}).get(obj.pk)
            return figures or None

    @extend_schema(
        operation_id="staff_participant_create",
        request=InputSerializer,
        responses={201: CreatedSerializer, **errors(400, 401, 403)},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        trial = Trial.objects.filter(slug=v["trial"]).first()
        site = Site.objects.filter(code=v["site"]).first()
        problems = {}
        if trial is None:
            problems["trial"] = ["No such trial."]
        if site is None:
            problems["site"] = ["No such site."]
        if problems:
            raise ValidationFailed(fields=problems)
        if not roles.has_role(request.user, roles.COORDINATOR) or not roles.can_reach_site(
            request.user, site.pk, roles=[roles.COORDINATOR]
        ):
            raise Forbidden(f"Only a coordinator of {site.code} may register participants there.")
        participant, code = services.participant_register(
            trial=trial,
            site=site,
            tz=v["timezone"],
            eligibility=request.data.get("eligibility"),
            contact=v.get("contact"),
            user=request.user,
        )
        body = {
            "id": participant.uuid,
            "study_id": participant.study_id,
            "status": participant.status,
            "enrolment_code": code,
            "enrolment_qr_url": _qr_url(request, participant) if code else None,
        }
        return Response(self.CreatedSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="staff_participant_list",
        parameters=[
            OpenApiParameter("site", str, description="site code"),
            OpenApiParameter("status", str, enum=ParticipantStatus.values),
            OpenApiParameter("trial", str, description="trial slug"),
        ],
        responses={200: ListItemSerializer(many=True), **errors(400, 401, 403)},
    )
    def get(self, request):
        qs = (
            _staff_participants(request.user)
            .select_related("trial", "site")
            .annotate(consented_at=Max("consents__signed_at"))
            .order_by("study_id")
        )
        params = request.query_params
        if params.get("status"):
            if params["status"] not in ParticipantStatus.values:
                raise ValidationFailed(fields={"status": [f"One of {', '.join(ParticipantStatus.values)}."]})
            qs = qs.filter(status=params["status"])
        if params.get("site"):
            qs = qs.filter(site__code=params["site"])
        if params.get("trial"):
            qs = qs.filter(trial__slug=params["trial"])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        figures = hooks.adherence(participants=page, now=utc_now())
        data = self.ListItemSerializer(page, many=True, context={"adherence": figures}).data
        return paginator.get_paginated_response(data)


class StaffEnrolmentCodeApi(ParticipantsApiView):
    """Re-issue the enrolment code (the previous one dies)."""

    permission_classes = [IsStaff]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffEnrolmentCodeOutput"

        enrolment_code = serializers.CharField()
        enrolment_qr_url = serializers.URLField()

    @extend_schema(
        operation_id="staff_enrolment_code_issue",
        request=None,
        responses={201: OutputSerializer, **errors(401, 403, 404, 409)},
    )
    def post(self, request, pk):
        participant = _staff_participant(request.user, pk)
        _require_coordinator(request.user, participant)
        code = services.enrolment_code_issue(participant=participant, user=request.user)
        return Response(
            {"enrolment_code": code, "enrolment_qr_url": _qr_url(request, participant)}, status=status.HTTP_201_CREATED
        )


class StaffEnrolmentQrApi(ParticipantsApiView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="staff_enrolment_qr",
        responses={(200, "image/svg+xml"): OpenApiResponse(OpenApiTypes.BINARY), **errors(401, 403, 404)},
    )
    def get(self, request, pk):
        participant = _staff_participant(request.user, pk)
        _require_coordinator(request.user, participant)
        code = services.enrolment_code_live(participant=participant)
        if code is None:
            raise NotFound("This participant has no live enrolment code; issue a new one.")
        svg = enrolment_qr_svg(code)
        response = HttpResponse(svg, content_type="image/svg+xml")
        response["Cache-Control"] = "no-store"
        return response


class StaffRandomiseApi(ParticipantsApiView):
    permission_classes = [IsStaff]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "StaffRandomiseOutput"

        study_id = serializers.CharField()
        randomised_at = serializers.DateTimeField()
        unit_codes = serializers.ListField(child=serializers.CharField(), help_text="labels, not contents")

    @extend_schema(
        operation_id="staff_participant_randomise",
        request=None,
        responses={201: OutputSerializer, **errors(401, 403, 404, 409)},
    )
    def post(self, request, pk):
        participant = _staff_participant(request.user, pk)
        _require_coordinator(request.user, participant)
        allocation = services.participant_randomise(participant=participant, user=request.user)
        body = {
            "study_id": participant.study_id,
            "randomised_at": allocation.allocated_at,
            "unit_codes": services.unit_codes_of(allocation),
        }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class StaffWithdrawApi(ParticipantsApiView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="staff_participant_withdraw",
        request=WithdrawInputSerializer,
        responses={201: WithdrawOutputSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, pk):
        participant = _staff_participant(request.user, pk)
        _require_coordinator(request.user, participant)
        data = WithdrawInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.participant_withdraw(
            participant=participant,
            scope=data.validated_data["scope"],
            reason=data.validated_data.get("reason", ""),
            by_participant=False,
            user=request.user,
        )
        return Response(WithdrawOutputSerializer(withdrawal).data, status=status.HTTP_201_CREATED)
