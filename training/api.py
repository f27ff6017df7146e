"""REST API for training runs (`/api/v1/training-runs/`), methods, models (`/api/v1/models/`) and rounds runs
(`/api/v1/rounds/`): staff only."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.permissions import access_project_for_management, access_snapshot
from loupe.errors import ApplicationError
from training import selectors, services
from training.models import ArtifactKind, ModelArtifact
from training.permissions import access_model_artifact, access_rounds_run, access_training, access_training_run
from training.rounds import (
    rounds_run_cancel,
    rounds_run_resume,
    rounds_run_start,
    rounds_runs_reap_dead,
)


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
    failure_cause = serializers.CharField(
        allow_null=True, help_text="A failed run's cause in one line (the log has the details); null otherwise."
    )
    last_checkpoint = serializers.CharField(
        allow_null=True, help_text="The checkpoint a resume continues from (e.g. checkpoint-20); null for none."
    )
    metrics = serializers.ListField(child=serializers.DictField())
    log_tail = serializers.CharField()
    artifacts = ModelArtifactOutputSerializer(many=True)


def _run_detail(run) -> dict:  # noqa: ANN001
    body = dict(TrainingRunOutputSerializer(run).data)
    body["eta_seconds"] = selectors.training_run_eta_seconds(run=run)
    body["failure_cause"] = selectors.training_run_failure_cause(run=run)
    body["last_checkpoint"] = selectors.training_run_last_checkpoint(run=run)
    body["metrics"] = selectors.training_run_metrics(run=run)
    body["log_tail"] = run.log[-20000:]
    body["artifacts"] = ModelArtifactOutputSerializer(run.artifacts.all(), many=True).data
    return body


class TrainingRunListApi(APIView):
    """Training runs, newest first (the latest 200); start one (checked before anything is queued)."""

    @extend_schema_serializer(component_name="TrainingRunCreateInput")
    class InputSerializer(serializers.Serializer):
        method = serializers.CharField(help_text="sft, reward, dpo, ddpo, ppo, grpo, rloo or best_of_n.")
        snapshot = serializers.IntegerField(help_text="The snapshot to train on; its kind must suit the method.")
        base_model = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="A local model folder (with config.json) or a registered model's name. Hub names are refused: "
            "Loupe works offline; register a downloaded hub model first (POST /api/v1/models/).",
        )
        base_artifact = serializers.IntegerField(
            required=False, allow_null=True, default=None, help_text="A registered model's id (instead of base_model)."
        )
        config = serializers.DictField(
            required=False, default=dict, help_text="The method's settings (GET /api/v1/training-methods/)."
        )

    @extend_schema(responses=TrainingRunOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        """Training runs, newest first (the latest 200)."""
        access_training(user=request.user)
        services.training_runs_reap_dead()
        return ApiResponse(TrainingRunOutputSerializer(selectors.training_run_list()[:200], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: TrainingRunOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        """Queue a run: the method, the snapshot's kind, the base model and the config are checked first (400)."""
        access_training(user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = access_snapshot(user=request.user, snapshot_id=data.validated_data["snapshot"])
        base_artifact = None
        if data.validated_data["base_artifact"] is not None:
            base_artifact = access_model_artifact(user=request.user, artifact_id=data.validated_data["base_artifact"])
        elif not data.validated_data["base_model"].strip():
            raise ApplicationError(
                "Give a base_model (a model folder or a registered model's name) or a base_artifact id.",
                {"field": "base_model"},
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
    """One run: status, progress, ETA, metrics, the log's tail, a failed run's cause and its output models."""

    @extend_schema(responses=TrainingRunDetailOutputSerializer)
    def get(self, request: Request, run_id: int) -> ApiResponse:
        access_training(user=request.user)
        services.training_runs_reap_dead()
        run = access_training_run(user=request.user, run_id=run_id)
        return ApiResponse(_run_detail(run))


class TrainingRunCancelApi(APIView):
    """Cancel a run: a queued one ends at once, a running one after its current step."""

    @extend_schema(request=None, responses=TrainingRunOutputSerializer)
    def post(self, request: Request, run_id: int) -> ApiResponse:
        run = services.training_run_cancel(run=access_training_run(user=request.user, run_id=run_id))
        return ApiResponse(TrainingRunOutputSerializer(run).data)


class TrainingRunResumeApi(APIView):
    """Queue a failed or cancelled run again: from its last checkpoint if it has one, else from the start."""

    @extend_schema(request=None, responses=TrainingRunOutputSerializer)
    def post(self, request: Request, run_id: int) -> ApiResponse:
        services.training_runs_reap_dead()
        run = services.training_run_resume(run=access_training_run(user=request.user, run_id=run_id))
        return ApiResponse(TrainingRunOutputSerializer(run).data)


class TrainingMethodListApi(APIView):
    @extend_schema_serializer(component_name="TrainingMethodOutput")
    class OutputSerializer(serializers.Serializer):
        method = serializers.CharField()
        description = serializers.CharField()
        settings = serializers.ListField(
            child=serializers.DictField(), help_text="Each setting: name, type, default and help."
        )
        defaults = serializers.DictField(help_text="Setting name -> default value.")

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        """Every training method with its settings: name, type, default and help text."""
        access_training(user=request.user)
        return ApiResponse(selectors.training_methods())


class ModelArtifactListApi(APIView):
    """The models Loupe knows (trained or registered), newest first; register one."""

    @extend_schema_serializer(component_name="ModelArtifactRegisterInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.RegexField(
            rf"^{services.MODEL_NAME_PATTERN}\Z",
            max_length=services.MODEL_NAME_MAX_LENGTH,
            help_text=services.MODEL_NAME_HELP,
            error_messages={"invalid": services.MODEL_NAME_HELP},
        )
        location = serializers.CharField(max_length=ModelArtifact._meta.get_field("location").max_length)
        kind = serializers.ChoiceField(choices=ArtifactKind.choices, default=ArtifactKind.POLICY)
        is_adapter = serializers.BooleanField(default=False)

    @extend_schema(responses=ModelArtifactOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        """The models Loupe knows, newest first (the latest 500)."""
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
    @extend_schema_serializer(component_name="ModelArtifactMergeOutput")
    class OutputSerializer(serializers.Serializer):
        queued = serializers.BooleanField()
        merged_name = serializers.CharField(help_text="The name the merged model will be registered under.")

    @extend_schema(request=None, responses={202: OutputSerializer})
    def post(self, request: Request, artifact_id: int) -> ApiResponse:
        """Queue merging a LoRA adapter into a full model, registered as `<name>-merged` when done."""
        artifact: ModelArtifact = access_model_artifact(user=request.user, artifact_id=artifact_id)
        merged_name = services.model_artifact_merge(artifact=artifact)
        return ApiResponse({"queued": True, "merged_name": merged_name}, status=status.HTTP_202_ACCEPTED)


# --------------------------------------------------------------------------------------------------------------
# Rounds (RLAIF-V's generate → label → snapshot → DPO loop, `training.rounds`)


class RoundOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    policy = ModelArtifactOutputSerializer()
    items = serializers.SerializerMethodField()
    generated_at = serializers.DateTimeField(allow_null=True)
    labeler_job = serializers.IntegerField(source="labeler_job_id", allow_null=True)
    labeler_job_status = serializers.CharField(source="labeler_job.status", allow_null=True, default=None)
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True)
    training_run_status = serializers.CharField(source="training_run.status", allow_null=True, default=None)
    model = ModelArtifactOutputSerializer(allow_null=True)
    figures = serializers.DictField()

    def get_items(self, round_) -> int:  # noqa: ANN001
        return len(round_.item_ids)


class RoundsRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    base_artifact = serializers.IntegerField(source="base_artifact_id")
    base_model = serializers.CharField(source="base_artifact.name")
    n_rounds = serializers.IntegerField()
    config = serializers.DictField()
    status = serializers.CharField()
    current_round = serializers.IntegerField()
    step = serializers.CharField()
    steps_done = serializers.IntegerField()
    steps_total = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RoundsRunDetailOutputSerializer(RoundsRunOutputSerializer):
    rounds = RoundOutputSerializer(many=True)
    log_tail = serializers.CharField()


def _rounds_run_detail(run) -> dict:  # noqa: ANN001
    body = dict(RoundsRunOutputSerializer(run).data)
    body["rounds"] = RoundOutputSerializer(selectors.rounds_of_run(rounds_run=run), many=True).data
    body["log_tail"] = run.log[-20000:]
    return body


class RoundsRunListApi(APIView):
    """Rounds runs (generate → label → snapshot → DPO), newest first; start one."""

    @extend_schema_serializer(component_name="RoundsRunStartInput")
    class InputSerializer(serializers.Serializer):
        project = serializers.SlugField(help_text="The project whose items' prompts every round samples.")
        base_model = serializers.CharField(help_text="A registered model's name or id, or a folder or hub name.")
        n_rounds = serializers.IntegerField(min_value=1, max_value=100)
        config = serializers.DictField(required=False, default=dict, help_text="RoundsConfig fields.")

    @extend_schema(responses=RoundsRunOutputSerializer(many=True))
    def get(self, request: Request) -> ApiResponse:
        """Rounds runs, newest first (the latest 200)."""
        access_training(user=request.user)
        rounds_runs_reap_dead()
        return ApiResponse(RoundsRunOutputSerializer(selectors.rounds_run_list()[:200], many=True).data)

    @extend_schema(request=InputSerializer, responses={201: RoundsRunOutputSerializer})
    def post(self, request: Request) -> ApiResponse:
        """Start K rounds of generate → label → snapshot → DPO on a project (a worker on `training` runs them)."""
        access_training(user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = access_project_for_management(user=request.user, project_slug=data.validated_data["project"])
        run = rounds_run_start(
            project=project,
            base_model=data.validated_data["base_model"],
            n_rounds=data.validated_data["n_rounds"],
            config=data.validated_data["config"],
            created_by=request.user,
        )
        return ApiResponse(RoundsRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class RoundsRunDetailApi(APIView):
    """One rounds run with each round's items, labeler job, snapshot, training run, model and figures."""

    @extend_schema(responses=RoundsRunDetailOutputSerializer)
    def get(self, request: Request, rounds_run_id: int) -> ApiResponse:
        access_training(user=request.user)
        rounds_runs_reap_dead()
        return ApiResponse(_rounds_run_detail(access_rounds_run(user=request.user, rounds_run_id=rounds_run_id)))


class RoundsRunCancelApi(APIView):
    """Cancel a rounds run; it stops at the end of its current step."""

    @extend_schema(request=None, responses=RoundsRunOutputSerializer)
    def post(self, request: Request, rounds_run_id: int) -> ApiResponse:
        run = rounds_run_cancel(rounds_run=access_rounds_run(user=request.user, rounds_run_id=rounds_run_id))
        return ApiResponse(RoundsRunOutputSerializer(run).data)


class RoundsRunResumeApi(APIView):
    @extend_schema(request=None, responses=RoundsRunOutputSerializer)
    def post(self, request: Request, rounds_run_id: int) -> ApiResponse:
        """Resume a failed or cancelled run at the step that stopped it (finished steps are not redone)."""
        rounds_runs_reap_dead()
        run = rounds_run_resume(rounds_run=access_rounds_run(user=request.user, rounds_run_id=rounds_run_id))
        return ApiResponse(RoundsRunOutputSerializer(run).data)
