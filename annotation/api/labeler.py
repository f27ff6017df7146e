"""REST API: AI labeler jobs (start, list, detail, cancel, resume), for a project's managers only."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.labeler.backends import BACKEND_KINDS
from annotation.models import Item, JobStatus
from annotation.permissions import access_labeler_job, access_project_for_management, access_snapshot
from annotation.services.labeler import (
    labeler_job_cancel,
    labeler_job_resume,
    labeler_job_start,
    labeler_jobs_reap_dead,
)
from loupe.errors import ApplicationError
from loupe.failures import log_for_users

MAX_ID = 2**63 - 1


class LabelerJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    item_ids = serializers.ListField(child=serializers.IntegerField())
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)
    backend = serializers.CharField()
    model = serializers.CharField()
    base_url = serializers.CharField()
    prompt_version = serializers.CharField()
    config = serializers.DictField()
    rewrite = serializers.BooleanField()
    status = serializers.CharField()
    cancel_requested = serializers.BooleanField()
    done = serializers.IntegerField()
    labelled = serializers.IntegerField()
    skipped = serializers.IntegerField()
    questions = serializers.IntegerField()
    total = serializers.IntegerField()
    progress = serializers.SerializerMethodField()
    log = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_log(self, job) -> str:
        # Tracebacks and server paths stay with staff (the admin); managers read the cause.
        return log_for_users(job.log)

    def get_progress(self, job) -> float:
        if job.status == JobStatus.SUCCEEDED:
            return 1.0
        return min(1.0, job.done / job.total) if job.total else 0.0


class LabelerJobListApi(APIView):
    """The project's labeler jobs, newest first."""

    @extend_schema(responses=LabelerJobOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        labeler_jobs_reap_dead()
        jobs = project.labeler_jobs.select_related("project").order_by("-id")[:50]
        return ApiResponse(LabelerJobOutputSerializer(jobs, many=True).data)


class LabelerJobStartApi(APIView):
    """Queue an AI labeler job over the project's responses (or the listed items')."""

    @extend_schema_serializer(component_name="LabelerJobStartInput")
    class InputSerializer(serializers.Serializer):
        backend = serializers.ChoiceField(choices=BACKEND_KINDS)
        model = serializers.CharField(max_length=500)
        base_url = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)
        prompt_version = serializers.CharField(max_length=50, required=False, default="v1")
        config = serializers.DictField(required=False, default=dict)
        rewrite = serializers.BooleanField(required=False, default=False)
        # Ids are database keys: bounded, so a huge number is a 400, not an overflow in the query.
        item_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False, default=list
        )
        snapshot = serializers.IntegerField(
            min_value=1, max_value=MAX_ID, required=False, allow_null=True, default=None
        )

    @extend_schema(request=InputSerializer, responses={202: LabelerJobOutputSerializer})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        item_ids = fields.pop("item_ids")
        snapshot_id = fields.pop("snapshot")
        snapshot = access_snapshot(user=request.user, snapshot_id=snapshot_id) if snapshot_id else None
        items = list(Item.objects.filter(project=project, pk__in=item_ids)) if item_ids else None
        if items is not None and len(items) != len(set(item_ids)):
            raise ApplicationError("Some of the items are not in this project.", {"field": "item_ids"})
        job = labeler_job_start(project=project, items=items, snapshot=snapshot, created_by=request.user, **fields)
        return ApiResponse(LabelerJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class LabelerJobDetailApi(APIView):
    """One labeler job: its settings, status, counts, progress and log."""

    @extend_schema(responses=LabelerJobOutputSerializer)
    def get(self, request: Request, job_id: int) -> ApiResponse:
        labeler_jobs_reap_dead()
        job = access_labeler_job(user=request.user, job_id=job_id)
        return ApiResponse(LabelerJobOutputSerializer(job).data)


class LabelerJobCancelApi(APIView):
    """Stop a queued or running labeler job; the verdicts stored so far are kept."""

    @extend_schema(request=None, responses=LabelerJobOutputSerializer)
    def post(self, request: Request, job_id: int) -> ApiResponse:
        job = access_labeler_job(user=request.user, job_id=job_id)
        return ApiResponse(LabelerJobOutputSerializer(labeler_job_cancel(job=job)).data)


class LabelerJobResumeApi(APIView):
    """Queue a failed or cancelled labeler job again; it judges only the answers it has not judged."""

    @extend_schema(request=None, responses={202: LabelerJobOutputSerializer})
    def post(self, request: Request, job_id: int) -> ApiResponse:
        job = access_labeler_job(user=request.user, job_id=job_id)
        job = labeler_job_resume(job=job)
        return ApiResponse(LabelerJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)
