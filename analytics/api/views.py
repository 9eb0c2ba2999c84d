"""Staff API of the analytics app: export jobs and the trial summary. Thin: parse, call, shape."""

from __future__ import annotations

import os

from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from trialsite.api.errors import Conflict, Forbidden, NotFound, ValidationFailed, parse_key
from trialsite.api.permissions import IsStaff
from trialsite.api.schema import errors
from trialsite.audit import audit_context
from trialsite.models import Trial

from .. import selectors, services
from ..export import FORMATS
from ..models import ExportStatus
from ..summary import trial_summary_for


class ExportCreateApi(APIView):
    permission_classes = [IsStaff]

    class InputSerializer(serializers.Serializer):
        trial = serializers.SlugField()
        blinded = serializers.BooleanField(default=True)
        formats = serializers.ListField(
            child=serializers.ChoiceField(choices=FORMATS), default=lambda: ["csv"], allow_empty=False
        )
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="uuid")
        status = serializers.ChoiceField(choices=ExportStatus.choices)

    @extend_schema(
        operation_id="staff_export_create",
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.UUID,
                OpenApiParameter.HEADER,
                required=False,
                description="Optional client UUID: the same key again (any web process) answers with the first job; "
                "the same key for a different export is 409 idempotency_mismatch.",
            )
        ],
        responses={202: OutputSerializer, **errors(400, 401, 403, 404, 409)},
        description="Statistician roles. `blinded: false` needs unblinded_statistician and a reason (else 403).",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        trial = Trial.objects.filter(slug=v["trial"]).first()
        if trial is None:
            raise NotFound("No such trial.")
        raw_key = request.headers.get("Idempotency-Key")
        key = parse_key(raw_key, field="Idempotency-Key") if raw_key else None
        try:
            with audit_context(user=request.user, reason=v["reason"] or "export"):
                job = services.export_job_create(
                    trial=trial,
                    actor=request.user,
                    blinded=v["blinded"],
                    formats=v["formats"],
                    reason=v["reason"],
                    idempotency_key=key,
                )
        except PermissionDenied as exc:
            raise Forbidden(str(exc)) from exc
        except services.ExportIdempotencyMismatch as exc:
            raise Conflict(str(exc), code="idempotency_mismatch") from exc
        return Response(self.OutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportStatusOutput(serializers.Serializer):
    id = serializers.UUIDField(source="uuid")
    status = serializers.ChoiceField(choices=ExportStatus.choices)
    progress = serializers.FloatField()
    blinded = serializers.BooleanField()
    formats = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    sha256 = serializers.CharField(allow_blank=True)
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, job) -> str | None:
        if job.status != ExportStatus.DONE:
            return None
        request = self.context.get("request")
        url = reverse("analytics:staff-export-download", kwargs={"pk": job.uuid})
        return request.build_absolute_uri(url) if request else url


class ExportDetailApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(operation_id="staff_export_get", responses={200: ExportStatusOutput, **errors(401, 403, 404)})
    def get(self, request, pk):
        job = selectors.export_job_get(user=request.user, job_uuid=pk)
        if job is None:
            raise NotFound("No such export.")
        return Response(ExportStatusOutput(job, context={"request": request}).data)


class ExportDownloadApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="staff_export_download",
        description="The requester only; an unblinded bundle also needs the unblinded_statistician role now (403).",
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="the zip bundle"),
            **errors(401, 403, 404, 409),
        },
    )
    def get(self, request, pk):
        try:
            # The requester held the role then; a revoked role no longer reaches the bundle.
            job = selectors.export_job_download(actor=request.user, job_uuid=pk)
        except PermissionDenied as exc:
            raise Forbidden(str(exc)) from exc
        if job is None:
            raise NotFound("No such export.")
        if job.status != ExportStatus.DONE:
            raise Conflict(f"The export is {job.status}, not ready.")
        if not os.path.exists(job.file_path):
            raise NotFound("The bundle file is no longer available; request the export again.")
        response = FileResponse(
            open(job.file_path, "rb"),  # noqa: SIM115 - FileResponse closes it
            as_attachment=True,
            filename=f"{job.trial.slug}-export-{job.uuid}.zip",
            content_type="application/zip",
        )
        response["X-Checksum-SHA256"] = job.sha256
        return response


class GuessCountsOutput(serializers.Serializer):
    active = serializers.IntegerField()
    placebo = serializers.IntegerField()
    dont_know = serializers.IntegerField()


class ParticipantGuessesOutput(GuessCountsOutput):
    schedule_key = serializers.CharField()
    planned_day = serializers.IntegerField()


class CoordinatorGuessesOutput(GuessCountsOutput):
    time_point = serializers.CharField(help_text="day_<planned study day>")
    planned_day = serializers.IntegerField()


class EstimateOutput(serializers.Serializer):
    index = serializers.FloatField(allow_null=True)
    se = serializers.FloatField(allow_null=True)
    lower = serializers.FloatField(allow_null=True)
    upper = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()


class BangOutput(serializers.Serializer):
    active = EstimateOutput(help_text="Bang's index among those actually on the active arm")
    placebo = EstimateOutput(help_text="Bang's index among those actually on placebo")


class IndicesOutput(serializers.Serializer):
    planned_day = serializers.IntegerField()
    table = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="guess rows (active, placebo, don't know) × actual columns (active, placebo)",
    )
    bang = BangOutput()
    james = EstimateOutput()


class ParticipantIndicesOutput(IndicesOutput):
    schedule_key = serializers.CharField()


class CoordinatorIndicesOutput(IndicesOutput):
    time_point = serializers.CharField()


class BlindingTimePointOutput(serializers.Serializer):
    schedule_key = serializers.CharField(required=False)
    planned_day = serializers.IntegerField(required=False)
    period = serializers.IntegerField(allow_null=True, required=False, help_text="crossover period (1-based)")
    dose_number = serializers.IntegerField(allow_null=True, required=False, help_text="crossover: dose of the period")
    n = serializers.IntegerField()
    table = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    correct_guess_rate = serializers.DictField(
        help_text="active / placebo / overall: respondents, dont_know, k correct of n guessers, rate, Wilson lower/upper"
    )
    bang = serializers.DictField()
    james = serializers.DictField()
    outcome_by_arm_guess = serializers.ListField(
        child=serializers.DictField(), help_text="arm, guess, n, mean, sd, lower, upper (mean ± z·sd/√n)"
    )
    cgrc = serializers.DictField(
        help_text="defined, reason, n, strata, trial_cgr, naive_effect, target (0.5), expected, estimate, lower, "
        "upper, n_trials, bandwidth, curve [{cgr, expected}] (docs/blinding-analysis.md)"
    )


class BlindingSessionsOutput(serializers.Serializer):
    arms = serializers.DictField(
        help_text='{"active": [{code, name}], "placebo": [{code, name}]}: the arms behind the labels'
    )
    outcome = serializers.CharField(allow_null=True, help_text="instrument.score analysed, e.g. phq9.total")
    change_from_baseline = serializers.BooleanField()
    crossover = serializers.BooleanField()
    time_points = BlindingTimePointOutput(many=True)
    periods = BlindingTimePointOutput(many=True, help_text="crossover: each participant's last guess per period")


class BlindingSummaryOutput(serializers.Serializer):
    guesses = ParticipantGuessesOutput(many=True, help_text="participants' guesses per time point (no arm)")
    coordinator_guesses = CoordinatorGuessesOutput(many=True, help_text="coordinators' guesses per time point (no arm)")
    indices = ParticipantIndicesOutput(
        many=True, required=False, help_text="unblinded roles only: participants' Bang and James indices"
    )
    coordinator_indices = CoordinatorIndicesOutput(
        many=True, required=False, help_text="unblinded roles only: coordinators' Bang and James indices"
    )
    sessions = BlindingSessionsOutput(
        required=False,
        help_text="unblinded roles only: per time point (guess session or period end) and per crossover period, "
        "correct-guess rates with Wilson intervals, Bang and James, outcome by arm x guess, and the CGRC",
    )


class TrialSummaryOutput(serializers.Serializer):
    trial = serializers.SlugField()
    generated_at = serializers.DateTimeField()
    as_of = serializers.DateTimeField(
        help_text="when completion, adherence, latency and the guess counts (for unblinded roles also the per-arm "
        "indices and `blinding.sessions`) were computed: the stored figures (refreshed every few minutes, never "
        "older than DASHBOARD_SNAPSHOT_MAX_AGE) or generated_at when computed for this request"
    )
    consort = serializers.DictField()
    completion = serializers.DictField()
    adherence = serializers.DictField()
    latency = serializers.ListField(child=serializers.DictField())
    safety = serializers.DictField()
    blinding = BlindingSummaryOutput()


class TrialSummaryApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="staff_analytics_summary",
        parameters=[
            OpenApiParameter(
                "outcome",
                str,
                required=False,
                description="unblinded roles: the outcome of the per-session blinding figures, instrument.score "
                "(e.g. phq9.total); default: the first scored instrument with a baseline event",
            )
        ],
        responses={200: TrialSummaryOutput, **errors(400, 401, 403, 404)},
        description=(
            "CONSORT counts, completion and adherence by site and study week, response latency (these three, the "
            "guess counts and the unblinded roles' blinding figures as stored at `as_of`), safety and the "
            "overall blinding-guess distribution of the participants and of the coordinators. Per-arm Bang and "
            "overall James indices (participants' and coordinators') only for unblinded roles, and for them "
            "`blinding.sessions`: per time point and per crossover period the correct-guess rates (Wilson), "
            "outcome by arm x guess and the CGRC estimate at chance-level guessing. "
            "Site-scoped staff see their sites only."
        ),
    )
    def get(self, request, trial):
        obj = Trial.objects.filter(slug=trial).first()
        if obj is None:
            raise NotFound("No such trial.")
        try:
            summary = trial_summary_for(actor=request.user, trial=obj, outcome=request.query_params.get("outcome"))
        except PermissionDenied as exc:
            raise Forbidden(str(exc)) from exc
        except ValueError as exc:
            raise ValidationFailed(str(exc), fields={"outcome": [str(exc)]}) from exc
        return Response(summary)
