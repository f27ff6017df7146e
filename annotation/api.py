"""REST API of the annotation app (`/api/v1/`). Views translate HTTP to services and selectors; every
protected object comes through an `access_*` function."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.contrib.auth import get_user_model
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import selectors, services
from annotation.models import Assignment, Item, ProjectKind, Role
from annotation.permissions import access_project, access_project_for_management, access_snapshot
from loupe.errors import ApplicationError


class ProjectOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    kind = serializers.CharField()
    instructions = serializers.CharField()
    overlap = serializers.IntegerField()
    rating_levels = serializers.ListField(child=serializers.CharField())
    hallucination_types = serializers.ListField(child=serializers.CharField())


class ProjectListApi(APIView):
    class InputSerializer(serializers.Serializer):
        slug = serializers.SlugField(max_length=80)
        kind = serializers.ChoiceField(choices=ProjectKind.values)
        name = serializers.CharField(max_length=200, required=False, default="")
        instructions = serializers.CharField(required=False, default="", allow_blank=True)
        overlap = serializers.IntegerField(min_value=1, max_value=100, required=False, default=1)

    @extend_schema(responses=ProjectOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        projects = selectors.project_list_for_user(user=request.user)
        return ApiResponse(ProjectOutputSerializer(projects, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        if not request.user.is_staff:
            raise PermissionDenied("Only staff create projects.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(created_by=request.user, **data.validated_data)
        return ApiResponse(ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOutputSerializer)
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        body = ProjectOutputSerializer(project).data
        body["progress"] = selectors.project_progress(project=project, user=request.user)
        return ApiResponse(body)


class ProjectMemberAddApi(APIView):
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        role = serializers.ChoiceField(choices=Role.values, default=Role.ANNOTATOR)

    @extend_schema(request=InputSerializer, responses={201: None})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = get_user_model().objects.filter(username=data.validated_data["username"]).first()
        if user is None:
            raise ApplicationError("No such user.", {"field": "username"})
        services.project_member_add(project=project, user=user, role=data.validated_data["role"])
        return ApiResponse({"username": user.get_username(), "role": data.validated_data["role"]}, status=201)


class ItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    prompt = serializers.CharField()
    image_url = serializers.SerializerMethodField()
    done_count = serializers.IntegerField()

    def get_image_url(self, item: Item) -> str | None:
        return reverse("item-image", args=[item.pk]) if item.image else None


class ItemListApi(APIView):
    @extend_schema(responses=ItemOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        items = Item.objects.filter(project=project).order_by("id")
        from rest_framework.pagination import LimitOffsetPagination

        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(ItemOutputSerializer(page, many=True).data)


def _spooled_upload(upload, directory: Path, name: str) -> Path:
    if upload.size > settings.LOUPE_MAX_UPLOAD_BYTES:
        raise ApplicationError(f"Upload is larger than {settings.LOUPE_MAX_UPLOAD_BYTES} bytes.", {"field": name})
    target = directory / name
    with target.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return target


class ItemImportApi(APIView):
    """Import Loupe JSONL (multipart `file`), with images from a zip archive (`images`)."""

    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        images = serializers.FileField(required=False)

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: None})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with tempfile.TemporaryDirectory(prefix="loupe-import-") as tmp:
            directory = Path(tmp)
            items_file = _spooled_upload(data.validated_data["file"], directory, "items.jsonl")
            images = data.validated_data.get("images")
            images_path = _spooled_upload(images, directory, "images.zip") if images else None
            # Without an archive, relative image paths would resolve in this temporary folder; an
            # upload has nothing there, so refuse them clearly through the same checks.
            report = services.items_import(project=project, path=items_file, images=images_path or directory)
        return ApiResponse(report.as_dict(), status=status.HTTP_201_CREATED)


class TaskOutputSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    item_id = serializers.IntegerField()
    prompt = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)
    responses = serializers.ListField(child=serializers.DictField())
    lease_expires_at = serializers.DateTimeField()


def task_payload(assignment: Assignment) -> dict:
    item = assignment.item
    return {
        "assignment_id": assignment.pk,
        "item_id": item.pk,
        "prompt": item.prompt,
        "image_url": reverse("item-image", args=[item.pk]) if item.image else None,
        "responses": [
            {"id": response.pk, "text": response.text}
            for response in selectors.assignment_responses_shown(assignment=assignment)
        ],
        "lease_expires_at": assignment.lease_expires_at,
    }


class TaskNextApi(APIView):
    @extend_schema(request=None, responses={200: TaskOutputSerializer, 204: None})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        assignment = services.assignment_next(project=project, annotator=request.user)
        if assignment is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return ApiResponse(TaskOutputSerializer(task_payload(assignment)).data)


class TaskSubmitApi(APIView):
    parser_classes = [JSONParser, FormParser]

    class InputSerializer(serializers.Serializer):
        choice = serializers.CharField()
        strength = serializers.IntegerField(required=False, default=1)
        reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=5000)
        client_request_id = serializers.CharField(max_length=64)
        time_spent_ms = serializers.IntegerField(required=False, default=0, min_value=0)

    @extend_schema(request=InputSerializer, responses={201: None})
    def post(self, request: Request, slug: str, assignment_id: int) -> ApiResponse:
        access_project(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        judgment = services.pairwise_judgment_submit(
            assignment_id=assignment_id, annotator=request.user, **data.validated_data
        )
        return ApiResponse({"id": judgment.pk, "choice": judgment.choice}, status=status.HTTP_201_CREATED)


class SnapshotOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    content_hash = serializers.CharField()
    filters = serializers.DictField()
    n_rows = serializers.IntegerField()
    n_train = serializers.IntegerField()
    n_test = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class SnapshotListApi(APIView):
    class InputSerializer(serializers.Serializer):
        sources = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        min_agreement = serializers.FloatField(required=False, default=0.0)
        min_margin = serializers.FloatField(required=False, default=0.0)
        seed = serializers.IntegerField(required=False, default=0)
        test_fraction = serializers.FloatField(required=False, default=0.1, min_value=0.0, max_value=0.9)

    @extend_schema(responses=SnapshotOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        return ApiResponse(SnapshotOutputSerializer(project.snapshots.order_by("-id"), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: SnapshotOutputSerializer})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot_filter = services.SnapshotFilter(
            sources=tuple(data.validated_data["sources"]),
            min_agreement=data.validated_data["min_agreement"],
            min_margin=data.validated_data["min_margin"],
            seed=data.validated_data["seed"],
            test_fraction=data.validated_data["test_fraction"],
        )
        snapshot = services.snapshot_create(project=project, created_by=request.user, snapshot_filter=snapshot_filter)
        return ApiResponse(SnapshotOutputSerializer(snapshot).data, status=status.HTTP_201_CREATED)


class SnapshotDetailApi(APIView):
    @extend_schema(responses=SnapshotOutputSerializer)
    def get(self, request: Request, snapshot_id: int) -> ApiResponse:
        snapshot = access_snapshot(user=request.user, snapshot_id=snapshot_id)
        return ApiResponse(SnapshotOutputSerializer(snapshot).data)


class SnapshotExportApi(APIView):
    """Download a snapshot in one of the export formats."""

    @extend_schema(
        parameters=[OpenApiParameter("export_format", str, description="Export format, e.g. trl-jsonl.")],
        responses={(200, "application/octet-stream"): bytes},
    )
    def get(self, request: Request, snapshot_id: int) -> FileResponse:
        snapshot = access_snapshot(user=request.user, snapshot_id=snapshot_id)
        export_format = request.query_params.get("export_format", "trl-jsonl")
        archive = services.snapshot_export_archive(snapshot=snapshot, export_format=export_format)
        return FileResponse(archive.open("rb"), as_attachment=True, filename=archive.name)
