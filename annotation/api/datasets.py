"""REST API: Imports, snapshots and exports."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import services
from annotation.permissions import access_project_for_management, access_snapshot
from loupe.errors import ApplicationError


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
