"""Participant (phone) API of the participants app: enrol, logout, /me, consent, withdraw, push. Thin: parse,
call one service, shape output."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from trialsite.api.auth import token_revoke
from trialsite.api.errors import NotFound, ValidationFailed
from trialsite.api.lean import LeanGet
from trialsite.api.permissions import IsParticipant
from trialsite.api.rendering import render
from trialsite.api.throttling import ClientAddressThrottle
from trialsite.models import ApiToken
from trialsite.protocol.services import protocol_current_of

from ... import services
from ...models import Participant, WithdrawalScope
from ...selectors import ConsentStatus, consent_status
from ...token_join import phone_of
from ..common import ParticipantsApiView, errors

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


def safety_info(participant: Participant, request=None, *, protocol=None) -> dict | None:
    """The protocol's `safety_contact` in the participant's language (?lang=, else Accept-Language)."""
    from trialsite.protocol.i18n import localized, negotiate, text_languages

    protocol = protocol or protocol_current_of(participant.trial)
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


def me_data(participant: Participant, request=None, *, consent: ConsentStatus | None = None) -> dict:
    """The body of GET /api/v1/me: MeOutputSerializer's rendering (one bound instance, trialsite.api.rendering)."""
    return render(MeOutputSerializer, me_values(participant, request, consent=consent))


def me_values(participant: Participant, request=None, *, consent: ConsentStatus | None = None) -> dict:
    """What MeOutputSerializer renders for a participant. `consent`: the participant's consent status when the
    caller has it (decided on the rows read with the bearer token); else it is read here."""
    state = consent or consent_status(participant=participant)
    # The trial row came with the token: its current-version pointer and the per-version cache, no query.
    protocol = protocol_current_of(participant.trial)
    start, end = participant.quiet_hours_start, participant.quiet_hours_end
    if start is None or end is None:
        default = protocol.reminders.quiet_hours
        start, end = (default.start, default.end) if default else (None, None)
    return {
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
        "safety_info": safety_info(participant, request, protocol=protocol),
    }


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


class MeApi(LeanGet, ParticipantsApiView):
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
        # The consent rows came with the token, in its one statement (participants.token_join).
        phone = phone_of(request)
        consent = phone.consent_status() if phone is not None and phone.participant is request.participant else None
        return Response(me_data(request.participant, request, consent=consent))

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
            actor=request.user,
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
