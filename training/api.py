"""REST API for training runs (`/api/v1/training-runs/`), methods and models (`/api/v1/models/`): staff only."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.permissions import access_snapshot
from loupe.errors import ApplicationError
from training import selectors, services
from training.models import ArtifactKind, ModelArtifact
from training.permissions import access_model_artifact, access_training, access_training_run


class ModelArtifactOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    location = serializers.CharField()
    kind = serializers.CharField()
    is_adapter = serializers.BooleanField()
    base = serializers.IntegerField(source="base_id", allow_null=True)
    base_name = serializers.CharField()
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)
    produced_by = serializers.IntegerField(source="produced_by_id", allow_null=True)
    created_at = serializers.DateTimeField()


class TrainingRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    method = serializers.CharField()
    base_model = serializers.CharField()
    base_artifact = serializers.IntegerField(source="base_artifact_id", allow_null=True)
    snapshot = serializers.IntegerField(source="snapshot_id")
    config = serializers.DictField()
    status = serializers.CharField()
    step = serializers.IntegerField()
    max_steps = serializers.IntegerField()
    progress = serializers.FloatField()
    cancel_requested = serializers.BooleanField()
    output_dir = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class TrainingRunDetailOutputSerializer(TrainingRunOutputSerializer):
    eta_seconds = serializers.FloatField(allow_null=True)
    metrics = serializers.ListField(child=serializers.DictField())
    log_tail = serializers.CharField()
    artifacts = ModelArtifactOutputSerializer(many=True)


def _run_detail(run) -> dict:  # noqa: ANN001
    body = dict(TrainingRunOutputSerializer(run).data)
    body["eta_seconds"] = selectors.training_run_eta_seconds(run=run)
    body["metrics"] = selectors.training_run_metrics(run=run)
    body["log_tail"] = run.log[-20000:]
    body["artifacts"] = ModelArtifactOutputSerializer(run.artifacts.all(), many=True).data
    return body


class TrainingRunListApi(APIView):
    class InputSerializer(serializers.Serializer):
        method = serializers.CharField()
        snapshot = serializers.IntegerField()
        base_model = serializers.CharField(required=False, allow_blank=True, default="")
        base_artifact = serializers.IntegerField(required=False, allow_null=True, default=None)
        config = serializers.DictField(required=False, default=dict)

    @extend_schema(responses=TrainingRunOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        access_training(user=request.user)
        services.training_runs_reap_dead()
        return ApiResponse(TrainingRunOutputSerializer(selectors.training_run_list()[:200], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: TrainingRunOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        access_training(user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = access_snapshot(user=request.user, snapshot_id=data.validated_data["snapshot"])
        base_artifact = None
        if data.validated_data["base_artifact"] is not None:
            base_artifact = access_model_artifact(user=request.user, artifact_id=data.validated_data["base_artifact"])
        elif not data.validated_data["base_model"].strip():
            raise ApplicationError(
                "Give a base_model (hub name or folder) or a base_artifact id.", {"field": "base_model"}
            )
        run = services.training_run_create(
            method=data.validated_data["method"],
            snapshot=snapshot,
            base_model=data.validated_data["base_model"],
            base_artifact=base_artifact,
            config=data.validated_data["config"],
            created_by=request.user,
        )
        return ApiResponse(TrainingRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class TrainingRunDetailApi(APIView):
    @extend_schema(responses=TrainingRunDetailOutputSerializer)
    def get(self, request: Request, run_id: int) -> ApiResponse:
        access_training(user=request.user)
        services.training_runs_reap_dead()
        run = access_training_run(user=request.user, run_id=run_id)
        return ApiResponse(_run_detail(run))


class TrainingRunCancelApi(APIView):
    @extend_schema(request=None, responses=TrainingRunOutputSerializer)
    def post(self, request: Request, run_id: int) -> ApiResponse:
        run = services.training_run_cancel(run=access_training_run(user=request.user, run_id=run_id))
        return ApiResponse(TrainingRunOutputSerializer(run).data)


class TrainingRunResumeApi(APIView):
    @extend_schema(request=None, responses=TrainingRunOutputSerializer)
    def post(self, request: Request, run_id: int) -> ApiResponse:
        services.training_runs_reap_dead()
        run = services.training_run_resume(run=access_training_run(user=request.user, run_id=run_id))
        return ApiResponse(TrainingRunOutputSerializer(run).data)


class TrainingMethodListApi(APIView):
    @extend_schema(responses=serializers.ListField(child=serializers.DictField()))
    def get(self, request: Request) -> ApiResponse:
        """Every training method with its settings: name, type, default and help text."""
        access_training(user=request.user)
        return ApiResponse(selectors.training_methods())


class ModelArtifactListApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField()
        location = serializers.CharField()
        kind = serializers.ChoiceField(choices=ArtifactKind.choices, default=ArtifactKind.POLICY)
        is_adapter = serializers.BooleanField(default=False)

    @extend_schema(responses=ModelArtifactOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        access_training(user=request.user)
        return ApiResponse(ModelArtifactOutputSerializer(selectors.model_artifact_list()[:500], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ModelArtifactOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        """Register a model Loupe did not train (a hub name or a folder)."""
        access_training(user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        artifact = services.model_artifact_register(**data.validated_data)
        return ApiResponse(ModelArtifactOutputSerializer(artifact).data, status=status.HTTP_201_CREATED)


class ModelArtifactMergeApi(APIView):
    @extend_schema(request=None, responses={202: serializers.DictField()})
    def post(self, request: Request, artifact_id: int) -> ApiResponse:
        """Queue merging a LoRA adapter into a full model, registered as `<name>-merged` when done."""
        artifact: ModelArtifact = access_model_artifact(user=request.user, artifact_id=artifact_id)
        merged_name = services.model_artifact_merge(artifact=artifact)
        return ApiResponse({"queued": True, "merged_name": merged_name}, status=status.HTTP_202_ACCEPTED)
