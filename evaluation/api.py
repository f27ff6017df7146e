"""REST API for benchmark runs (`/api/v1/benchmark-runs/`) and the leaderboard: staff only (see permissions)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from evaluation import selectors, services
from evaluation.models import Benchmark
from evaluation.permissions import access_benchmark_run, access_benchmarks
from training.permissions import access_model_artifact


class BenchmarkRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    benchmark = serializers.CharField()
    model = serializers.IntegerField(source="model_id", allow_null=True)
    model_path = serializers.CharField()
    model_label = serializers.CharField()
    config = serializers.DictField()
    status = serializers.CharField()
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    progress = serializers.FloatField()
    cancel_requested = serializers.BooleanField()
    summary = serializers.DictField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class BenchmarkRunDetailOutputSerializer(BenchmarkRunOutputSerializer):
    log_tail = serializers.SerializerMethodField()

    def get_log_tail(self, run) -> str:  # noqa: ANN001
        return run.log[-20000:]


class BenchmarkRunListApi(APIView):
    """Benchmark runs, newest first (the latest 500); start one on a registered model or a model folder."""

    @extend_schema_serializer(component_name="BenchmarkRunStartInput")
    class InputSerializer(serializers.Serializer):
        benchmark = serializers.ChoiceField(choices=Benchmark.choices)
        model = serializers.IntegerField(required=False, allow_null=True, default=None)
        model_path = serializers.CharField(required=False, allow_blank=True, default="")
        config = serializers.DictField(required=False, default=dict)

    @extend_schema(responses=BenchmarkRunOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        access_benchmarks(user=request.user)
        services.benchmark_runs_reap_dead()
        return ApiResponse(BenchmarkRunOutputSerializer(selectors.benchmark_run_list()[:500], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: BenchmarkRunOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        access_benchmarks(user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = None
        if data.validated_data["model"] is not None:
            model = access_model_artifact(user=request.user, artifact_id=data.validated_data["model"])
        run = services.benchmark_run_start(
            benchmark=data.validated_data["benchmark"],
            config=data.validated_data["config"],
            model=model,
            model_path=data.validated_data["model_path"],
            created_by=request.user,
        )
        return ApiResponse(BenchmarkRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class BenchmarkRunDetailApi(APIView):
    """One benchmark run: status, progress, summary figures, error and the log's tail."""

    @extend_schema(responses=BenchmarkRunDetailOutputSerializer)
    def get(self, request: Request, run_id: int) -> ApiResponse:
        access_benchmarks(user=request.user)
        services.benchmark_runs_reap_dead()
        run = access_benchmark_run(user=request.user, run_id=run_id)
        return ApiResponse(BenchmarkRunDetailOutputSerializer(run).data)


class BenchmarkRunCancelApi(APIView):
    """Cancel a queued or running benchmark run."""

    @extend_schema(request=None, responses=BenchmarkRunOutputSerializer)
    def post(self, request: Request, run_id: int) -> ApiResponse:
        run = services.benchmark_run_cancel(run=access_benchmark_run(user=request.user, run_id=run_id))
        return ApiResponse(BenchmarkRunOutputSerializer(run).data)


class BenchmarkExampleListApi(APIView):
    @extend_schema_serializer(component_name="BenchmarkExampleFilter")
    class FilterSerializer(serializers.Serializer):
        hallucinated = serializers.BooleanField(required=False, allow_null=True, default=None)
        offset = serializers.IntegerField(required=False, min_value=0, default=0)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)

    @extend_schema_serializer(component_name="BenchmarkExampleOutput")
    class OutputSerializer(serializers.Serializer):
        index = serializers.IntegerField()
        key = serializers.CharField()
        input = serializers.DictField()
        answer = serializers.CharField()
        detail = serializers.DictField()
        hallucinated = serializers.BooleanField(allow_null=True)

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request: Request, run_id: int) -> ApiResponse:
        """A run's examples in order; ``hallucinated=true`` keeps those that hallucinated."""
        run = access_benchmark_run(user=request.user, run_id=run_id)
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        offset, limit = query.validated_data["offset"], query.validated_data["limit"]
        examples = selectors.benchmark_example_list(run=run, hallucinated=query.validated_data["hallucinated"])
        return ApiResponse(self.OutputSerializer(examples[offset : offset + limit], many=True).data)


class LeaderboardApi(APIView):
    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Models, benchmarks and scores.")})
    def get(self, request: Request) -> ApiResponse:
        """Models x benchmarks: each model's latest succeeded run per benchmark, with its lineage."""
        access_benchmarks(user=request.user)
        return ApiResponse(selectors.leaderboard())
