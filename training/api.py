"""REST API for training runs (`/api/v1/training-runs/`): staff only."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.permissions import access_snapshot
from training import selectors, services
from training.permissions import access_training, access_training_run


class TrainingRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    method = serializers.CharField()
    base_model = serializers.CharField()
    snapshot = serializers.IntegerField(source="snapshot_id")
    config = serializers.DictField()
    status = serializers.CharField()
    step = serializers.IntegerField()
    max_steps = serializers.IntegerField()
    progress = serializers.FloatField()
    output_dir = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class TrainingRunListApi(APIView):
    class InputSerializer(serializers.Serializer):
        method = serializers.CharField()
        snapshot = serializers.IntegerField()
        base_model = serializers.CharField()
        config = serializers.DictField(required=False, default=dict)

    @extend_schema(responses=TrainingRunOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        access_training(user=request.user)
        return ApiResponse(TrainingRunOutputSerializer(selectors.training_run_list()[:200], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: TrainingRunOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        access_training(user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = access_snapshot(user=request.user, snapshot_id=data.validated_data["snapshot"])
        run = services.training_run_create(
            method=data.validated_data["method"],
            snapshot=snapshot,
            base_model=data.validated_data["base_model"],
            config=data.validated_data["config"],
            created_by=request.user,
        )
        return ApiResponse(TrainingRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class TrainingRunDetailApi(APIView):
    @extend_schema(responses=TrainingRunOutputSerializer)
    def get(self, request: Request, run_id: int) -> ApiResponse:
        services.training_runs_reap_dead()
        run = access_training_run(user=request.user, run_id=run_id)
        body = TrainingRunOutputSerializer(run).data
        body["metrics"] = selectors.training_run_metrics(run=run)
        body["log_tail"] = run.log[-20000:]
        return ApiResponse(body)


class TrainingRunCancelApi(APIView):
    @extend_schema(request=None, responses=TrainingRunOutputSerializer)
    def post(self, request: Request, run_id: int) -> ApiResponse:
        run = services.training_run_cancel(run=access_training_run(user=request.user, run_id=run_id))
        return ApiResponse(TrainingRunOutputSerializer(run).data)


class TrainingRunResumeApi(APIView):
    @extend_schema(request=None, responses=TrainingRunOutputSerializer)
    def post(self, request: Request, run_id: int) -> ApiResponse:
        run = services.training_run_resume(run=access_training_run(user=request.user, run_id=run_id))
        return ApiResponse(TrainingRunOutputSerializer(run).data)
