"""REST API: Imports, snapshots and exports."""

import re
import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from django.urls import reverse
from django.utils import dateparse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import services
from annotation.permissions import access_project_for_management, access_snapshot
from loupe.errors import ApplicationError
from loupe.failures import log_for_users


def _spooled_upload(upload, directory: Path, name: str) -> Path:
    if upload.size > settings.LOUPE_MAX_UPLOAD_BYTES:
        raise ApplicationError(f"Upload is larger than {settings.LOUPE_MAX_UPLOAD_BYTES} bytes.", {"field": name})
    target = directory / name
    with target.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return target


# The name an upload is stored under for each format when the upload has none (readers look at nothing
# but Parquet's magic bytes, so the suffix only has to be sensible).
_UPLOAD_NAMES = {
    "loupe-jsonl": "items.jsonl",
    "caption-contest": "contest.csv",
    "rlaif-v": "rlaif_v.parquet",
    "rlhf-v": "rlhf_v.json",
    "label-studio": "tasks.json",
}


class ImportInputSerializer(serializers.Serializer):
    """A file to import (multipart)."""

    file = serializers.FileField()
    format = serializers.ChoiceField(choices=services.IMPORT_FORMATS, default="loupe-jsonl")
    images = serializers.FileField(required=False, help_text="A zip archive the file's image paths are inside.")
    image = serializers.FileField(required=False, help_text="The cartoon of a caption-contest table.")


def _upload_name(upload, import_format: str) -> str:
    """The name an uploaded file is spooled under: the name the user gave it, reduced to letters, digits,
    `.`, `_` and `-` (a caption-contest table without a `contest` column is named by it), with the
    format's suffix."""
    default = Path(_UPLOAD_NAMES[import_format])
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name or "").stem).strip("._-")[:100]
    return f"{stem or default.stem}{default.suffix}"


def spool_import(upload_data: dict, directory: Path) -> dict:
    """The uploaded files written to `directory`, as `items_import` arguments (path, images, image)."""
    import_format = upload_data["format"]
    source = _spooled_upload(upload_data["file"], directory, _upload_name(upload_data["file"], import_format))
    images = upload_data.get("images")
    cartoon = upload_data.get("image")
    # Without an archive, relative image paths would resolve in this folder; an upload has nothing else
    # there, so they are refused clearly through the same checks.
    return {
        "path": source,
        "import_format": import_format,
        "images": _spooled_upload(images, directory, "images.zip") if images else directory,
        "image": _spooled_upload(cartoon, directory, "cartoon" + Path(cartoon.name).suffix.lower())
        if cartoon
        else None,
    }


def import_job_start(*, project, upload_data: dict, user):
    """An import job for the validated upload (`ImportInputSerializer`): the files move into the job's folder."""
    with tempfile.TemporaryDirectory(prefix="loupe-import-") as tmp:
        arguments = spool_import(upload_data, Path(tmp))
        return services.data_job_import_start(
            project=project,
            source=arguments["path"],
            import_format=arguments["import_format"],
            images=arguments["images"] if arguments["images"].is_file() else None,
            image=arguments["image"],
            created_by=user,
            file_name=upload_data["file"].name,
        )


class DataJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    project = serializers.CharField(source="project.slug")
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)
    params = serializers.SerializerMethodField()
    status = serializers.CharField()
    done = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    log = serializers.SerializerMethodField()
    result = serializers.DictField()
    download_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def _progress(self, job):
        cache = self.context.setdefault("progress", {})
        if job.pk not in cache:
            cache[job.pk] = services.data_job_progress(job=job)
        return cache[job.pk]

    def get_log(self, job) -> str:
        # Tracebacks and server paths stay with staff (the admin); managers read the cause.
        return log_for_users(job.log)

    def get_params(self, job) -> dict:
        # Paths on the server are no business of the client.
        return {key: value for key, value in job.params.items() if key not in ("source", "images", "image")}

    def get_done(self, job) -> int:
        return self._progress(job).done

    def get_total(self, job) -> int:
        return self._progress(job).total

    def get_progress(self, job) -> float:
        return 1.0 if job.status == "succeeded" else self._progress(job).fraction

    def get_download_url(self, job) -> str | None:
        if job.kind != "export" or job.status != "succeeded":
            return None
        return reverse("data-job-download", kwargs={"job_id": job.pk})


class ItemImportApi(APIView):
    """Import a file (multipart `file`) in one of the import formats (`format`), with images from a zip
    archive (`images`) or, for a caption contest, the cartoon (`image`). Runs at once (201 with the report)
    when the upload is at most `LOUPE_SYNC_IMPORT_MAX_BYTES`; a larger one runs as an import job (202 with
    the job, as the import-jobs endpoint answers), so no web thread holds a long import."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema_serializer(component_name="ImportReportOutput")
    class OutputSerializer(serializers.Serializer):
        """What the import stored (nothing, when it is refused: a 400 naming the line and field)."""

        created = serializers.IntegerField(help_text="Items created.")
        unchanged = serializers.IntegerField(help_text="Items the project had already, with the same content.")
        annotations = serializers.IntegerField(help_text="Feedback records imported with the items.")
        pairs = serializers.IntegerField(help_text="Preference pairs the imported feedback made.")
        self_pairs_dropped = serializers.IntegerField(help_text="Pairs dropped: the same answer on both sides.")
        warnings = serializers.ListField(child=serializers.CharField())
        skipped_rows = serializers.ListField(
            child=serializers.DictField(), help_text="Caption-contest rows left out: {line, field, reason}."
        )
        disagreeing_rows = serializers.IntegerField()

    @extend_schema(
        request={"multipart/form-data": ImportInputSerializer},
        responses={201: OutputSerializer, 202: DataJobOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = ImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        uploads = [data.validated_data[name] for name in ("file", "images", "image") if data.validated_data.get(name)]
        if sum(upload.size for upload in uploads) > settings.LOUPE_SYNC_IMPORT_MAX_BYTES:
            job = import_job_start(project=project, upload_data=data.validated_data, user=request.user)
            return ApiResponse(DataJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        with tempfile.TemporaryDirectory(prefix="loupe-import-") as tmp:
            arguments = spool_import(data.validated_data, Path(tmp))
            report = services.items_import(project=project, **arguments)
        return ApiResponse(report.as_dict(), status=status.HTTP_201_CREATED)


class SnapshotOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.SerializerMethodField()
    content_hash = serializers.CharField()
    filters = serializers.DictField()
    stats = serializers.DictField()
    n_rows = serializers.IntegerField()
    n_train = serializers.IntegerField()
    n_test = serializers.IntegerField()
    warnings = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_kind(self, snapshot) -> str:
        return services.snapshot_kind(snapshot)

    def get_warnings(self, snapshot) -> list[str]:
        # What freezing let through but the user should know, e.g. a split that left a side empty.
        return list((snapshot.stats or {}).get("warnings", []))


def _iso_when(value: str | None) -> None:
    """An ISO date or datetime that exists (2020-13-45 parses as a shape but is no day: a 400, not a 500)."""
    if not value:
        return
    try:
        parsed = dateparse.parse_datetime(value) or dateparse.parse_date(value)
    except ValueError as error:
        raise serializers.ValidationError(f"{value[:40]!r} is not a valid date: {error}.") from error
    if parsed is None:
        raise serializers.ValidationError("Give an ISO date (2026-12-01) or datetime (2026-12-01T14:00:00Z).")


class SnapshotListApi(APIView):
    """The project's snapshots, newest first; freeze a new one from its preference pairs (managers only)."""

    @extend_schema_serializer(component_name="SnapshotCreateInput")
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=services.SNAPSHOT_KINDS, default="pairs")
        sources = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        min_agreement = serializers.FloatField(required=False, default=0.0)
        min_margin = serializers.FloatField(required=False, default=0.0)
        annotators = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        date_from = serializers.CharField(required=False, allow_null=True, default=None, validators=[_iso_when])
        date_to = serializers.CharField(required=False, allow_null=True, default=None, validators=[_iso_when])
        sft_threshold = serializers.FloatField(required=False, allow_null=True, default=None)
        balance_ai_lengths = serializers.BooleanField(required=False, default=True)
        ai_rewrite_pairs = serializers.BooleanField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Keep the AI labeler's rewrite pairs; default: in correction projects only.",
        )
        seed = serializers.IntegerField(required=False, default=0)
        test_fraction = serializers.FloatField(required=False, default=0.1, min_value=0.0, max_value=0.9)
        split_by = serializers.ChoiceField(
            choices=services.SPLIT_BY,
            required=False,
            allow_null=True,
            default=None,
            help_text="item or response; default: response in rating projects, else item.",
        )
        require_accepted = serializers.BooleanField(
            required=False, default=False, help_text="Only annotations a reviewer accepted or edited (issue 17)."
        )
        min_trust = serializers.FloatField(
            required=False,
            allow_null=True,
            default=None,
            min_value=0.0,
            max_value=1.0,
            help_text="Leave out annotators whose trust score (gold accuracy, /trust/) is below this.",
        )
        exclude_flagged = serializers.BooleanField(
            required=False, default=False, help_text="Leave out annotators flagged for straight-lining or speed."
        )

    @extend_schema(responses=SnapshotOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> ApiResponse:
        """The project's snapshots, newest first."""
        project = access_project_for_management(user=request.user, project_slug=slug)
        return ApiResponse(SnapshotOutputSerializer(project.snapshots.order_by("-id"), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: SnapshotOutputSerializer})
    def post(self, request: Request, slug: str) -> ApiResponse:
        """Freeze the project's pairs (or SFT rows, or ratings) that pass the filter, split into train and test."""
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        snapshot_filter = services.SnapshotFilter(
            kind=given["kind"],
            sources=tuple(given["sources"]),
            min_agreement=given["min_agreement"],
            min_margin=given["min_margin"],
            annotators=tuple(given["annotators"]),
            date_from=given["date_from"] or None,
            date_to=given["date_to"] or None,
            sft_threshold=given["sft_threshold"],
            balance_ai_lengths=given["balance_ai_lengths"],
            seed=given["seed"],
            test_fraction=given["test_fraction"],
            split_by=given["split_by"],
            ai_rewrite_pairs=given["ai_rewrite_pairs"],
            require_accepted=given["require_accepted"],
            min_trust=given["min_trust"],
            exclude_flagged=given["exclude_flagged"],
        )
        snapshot = services.snapshot_create(project=project, created_by=request.user, snapshot_filter=snapshot_filter)
        return ApiResponse(SnapshotOutputSerializer(snapshot).data, status=status.HTTP_201_CREATED)


class SnapshotDetailApi(APIView):
    """One snapshot: its filter, counts per source, split sizes and warnings."""

    @extend_schema(responses=SnapshotOutputSerializer)
    def get(self, request: Request, snapshot_id: int) -> ApiResponse:
        snapshot = access_snapshot(user=request.user, snapshot_id=snapshot_id)
        return ApiResponse(SnapshotOutputSerializer(snapshot).data)


def export_options_from(params: dict) -> dict:
    """Export options given as query or form parameters (`split`, `conversational`, `images_once`)."""
    options = {}
    if params.get("split"):
        options["split"] = params["split"]
    for flag in services.BOOLEAN_EXPORT_OPTIONS:
        if params.get(flag) not in (None, "", False):
            options[flag] = params[flag]
    return options


class SnapshotExportApi(APIView):
    """Download a snapshot in one of the export formats, as a zip of the export folder (made once, then
    served from disk). Large snapshots are better exported with an export job."""

    @extend_schema(
        parameters=[
            OpenApiParameter("export_format", str, description="Export format, e.g. trl-jsonl."),
            OpenApiParameter("split", str, description="all (default), train or test."),
            OpenApiParameter("conversational", bool, description="Message lists (TRL and SFT formats)."),
            OpenApiParameter(
                "images_once",
                bool,
                description="hf-dataset: store each distinct image once (small on disk; loading holds the images "
                "in memory instead of memory-mapping them).",
            ),
        ],
        responses={(200, "application/zip"): bytes},
    )
    def get(self, request: Request, snapshot_id: int) -> FileResponse:
        snapshot = access_snapshot(user=request.user, snapshot_id=snapshot_id)
        export_format = request.query_params.get("export_format", "trl-jsonl")
        archive = services.snapshot_export_archive(
            snapshot=snapshot, export_format=export_format, options=export_options_from(request.query_params)
        )
        return FileResponse(archive.open("rb"), as_attachment=True, filename=archive.name)


# ---------------------------------------------------------------------------------------------------
# Data jobs: large imports and exports in the background


class ExportJobInputSerializer(serializers.Serializer):
    format = serializers.CharField(help_text="An export format, e.g. trl-jsonl (see the README for all).")
    split = serializers.ChoiceField(choices=("all", "train", "test"), default="all")
    conversational = serializers.BooleanField(required=False, default=False)
    images_once = serializers.BooleanField(required=False, default=False)


class SnapshotExportJobApi(APIView):
    """Start an export of a snapshot in the background; poll the job and download its zip when done."""

    @extend_schema(request=ExportJobInputSerializer, responses={202: DataJobOutputSerializer})
    def post(self, request: Request, snapshot_id: int) -> ApiResponse:
        snapshot = access_snapshot(user=request.user, snapshot_id=snapshot_id)
        data = ExportJobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        options = {"split": data.validated_data["split"]}
        for flag in services.BOOLEAN_EXPORT_OPTIONS:
            if data.validated_data[flag]:
                options[flag] = True
        job = services.data_job_export_start(
            snapshot=snapshot, export_format=data.validated_data["format"], options=options, created_by=request.user
        )
        return ApiResponse(DataJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportJobApi(APIView):
    """Start an import in the background (same fields as the direct import); poll the job for progress."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": ImportInputSerializer}, responses={202: DataJobOutputSerializer})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = ImportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = import_job_start(project=project, upload_data=data.validated_data, user=request.user)
        return ApiResponse(DataJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ProjectJobListApi(APIView):
    """The project's data jobs (imports and exports), newest first (the latest 50)."""

    @extend_schema(responses=DataJobOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        services.data_jobs_reap_dead()
        jobs = project.data_jobs.select_related("project").order_by("-id")[:50]
        return ApiResponse(DataJobOutputSerializer(jobs, many=True).data)


class DataJobDetailApi(APIView):
    """One data job: its status, progress, log and result (and the download link of a finished export)."""

    @extend_schema(responses=DataJobOutputSerializer)
    def get(self, request: Request, job_id: int) -> ApiResponse:
        services.data_jobs_reap_dead()
        job = access_data_job(user=request.user, job_id=job_id)
        return ApiResponse(DataJobOutputSerializer(job).data)


class DataJobCancelApi(APIView):
    """Stop a queued or running data job; a cancelled import stores nothing."""

    @extend_schema(request=None, responses=DataJobOutputSerializer)
    def post(self, request: Request, job_id: int) -> ApiResponse:
        job = access_data_job(user=request.user, job_id=job_id)
        return ApiResponse(DataJobOutputSerializer(services.data_job_cancel(job=job)).data)


class DataJobDownloadApi(APIView):
    """The zip a finished export job wrote, named after the project, the snapshot and the format."""

    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request: Request, job_id: int) -> FileResponse:
        job = access_data_job(user=request.user, job_id=job_id)
        path = services.data_job_result_file(job=job)
        return FileResponse(path.open("rb"), as_attachment=True, filename=services.data_job_download_name(job=job))


def access_data_job(*, user, job_id: int):
    """The job, if `user` manages its project (the same 404 otherwise)."""
    from django.http import Http404

    from annotation.models import DataJob

    job = DataJob.objects.select_related("project", "snapshot").filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    access_project_for_management(user=user, project_slug=job.project.slug)
    return job
