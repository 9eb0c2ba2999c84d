"""Staff API of the participants app: staff token, participant list, enrolment code and QR, randomise,
withdraw. Thin: parse, call one service, shape output."""

from __future__ import annotations

from django.db.models import Max
from django.http import HttpResponse
from django.urls import reverse
from django.utils.timezone import now as utc_now
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from trialsite import policy, roles
from trialsite.api.errors import Forbidden, NotFound, ValidationFailed
from trialsite.api.pagination import ResultsPagination
from trialsite.api.permissions import IsStaff
from trialsite.models import Site, Trial

from ... import providers, services
from ...enrolment_link import enrolment_qr_svg
from ...models import Participant, ParticipantStatus
from ..common import ParticipantsApiView, errors
from .phone import WithdrawInputSerializer, WithdrawOutputSerializer

# --- staff API ----------------------------------------------------------------------------------------------


def _staff_participants(user):
    return roles.filter_by_site(Participant.objects.all(), user)


def _staff_participant(user, pk) -> Participant:
    """A participant the staff user may see (any role at the site), else 404 not_found."""
    participant = _staff_participants(user).select_related("trial", "site").filter(uuid=pk).first()
    if participant is None:
        raise NotFound("No such participant.")
    return participant


def _require_code_reader(user, participant: Participant) -> None:
    """The live code (a read) is for whoever may issue one (trialsite.policy)."""
    if not policy.can(user, policy.ENROLMENT_CODE_ISSUE, participant):
        raise Forbidden("Only a coordinator of the participant's site or a trial manager may do this.")


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
        (participants.providers: the surveys app), computed for the whole page at once."""

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
        participant, code = services.participant_register(
            trial=trial,
            site=site,
            tz=v["timezone"],
            eligibility=request.data.get("eligibility"),
            contact=v.get("contact"),
            actor=request.user,
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
        figures = providers.schedule_provider().adherence(participants=page, now=utc_now())
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
        code = services.enrolment_code_issue(participant=participant, actor=request.user)
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
        _require_code_reader(request.user, participant)
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
        allocation = services.participant_randomise(participant=participant, actor=request.user)
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
        data = WithdrawInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.participant_withdraw(
            participant=participant,
            scope=data.validated_data["scope"],
            reason=data.validated_data.get("reason", ""),
            by_participant=False,
            actor=request.user,
        )
        return Response(WithdrawOutputSerializer(withdrawal).data, status=status.HTTP_201_CREATED)
