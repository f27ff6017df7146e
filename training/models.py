"""Training runs and the models Loupe knows (design.md §4, §7)."""

from django.conf import settings
from django.db import models

# One status vocabulary for every long job (data, labeler, training, benchmark and recipe runs).
from annotation.models import DatasetSnapshot, JobStatus


class ArtifactKind(models.TextChoices):
    POLICY = "policy", "Policy (generates answers)"
    REWARD = "reward", "Reward model (scores answers)"
    SAMPLES = "samples", "Samples (best-of-N answers)"


class ModelArtifact(models.Model):
    """A model Loupe can train from, label with, sample from or benchmark: a hub name or a local folder.

    Lineage: the model it was trained from (``base`` when that is an artifact, and ``base_name`` always, as
    the run saw it), the snapshot it learnt from and the run that made it.
    """

    name = models.CharField(max_length=200, unique=True)
    location = models.CharField(max_length=500, help_text="Hub name or local folder for from_pretrained.")
    kind = models.CharField(max_length=10, choices=ArtifactKind.choices, default=ArtifactKind.POLICY)
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived")
    base_name = models.CharField(
        max_length=500, blank=True, default="", help_text="Hub name or folder of the model this one came from."
    )
    snapshot = models.ForeignKey(
        DatasetSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_artifacts"
    )
    is_adapter = models.BooleanField(default=False, help_text="A LoRA adapter on base_name, not a full model.")
    produced_by = models.ForeignKey(
        "TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class TrainingRun(models.Model):
    method = models.CharField(max_length=20)
    base_model = models.CharField(max_length=500, help_text="Hub name or local folder of the base model.")
    base_artifact = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.PROTECT, related_name="training_runs")
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    log = models.TextField(blank=True, default="")
    output_dir = models.CharField(max_length=500, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.method} run {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        return self.step / self.max_steps if self.max_steps else 0.0


class RunMetric(models.Model):
    """Metrics a run logged at one step (loss, rewards, accuracy, learning rate, tokens per second, ...)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    values = models.JSONField()
    logged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="run_metric_step_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"


class RoundsStep(models.TextChoices):
    """The steps of one round, in order; `done` once the round's model is registered."""

    GENERATE = "generate", "Generate answers"
    LABEL = "label", "Label with the AI labeler"
    SNAPSHOT = "snapshot", "Freeze AI pairs"
    TRAIN = "train", "Train (DPO)"
    DONE = "done", "Done"


class RoundsRun(models.Model):
    """RLAIF-V's iterative loop over a project (design.md §8, issue 12 item 7): for each of `n_rounds` rounds the
    current model samples answers, the AI labeler judges them, their AI pairs are frozen and DPO trains the next
    model, which samples the next round. Each round's records are `Round` rows; `training.rounds` runs it."""

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.PROTECT, related_name="rounds_runs", db_index=False
    )
    base_artifact = models.ForeignKey(
        ModelArtifact, on_delete=models.PROTECT, related_name="+", help_text="The model that samples round 1."
    )
    n_rounds = models.PositiveSmallIntegerField()
    config = models.JSONField(default=dict, help_text="RoundsConfig fields (training.rounds).")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    current_round = models.PositiveSmallIntegerField(default=0, help_text="1-based; 0 before the first starts.")
    step = models.CharField(max_length=10, choices=RoundsStep.choices, blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    log = models.TextField(blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "id"], name="rounds_run_project_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(n_rounds__gte=1), name="rounds_run_n_positive")]

    def __str__(self) -> str:
        return f"rounds run {self.pk} ({self.status})"

    @property
    def steps_total(self) -> int:
        return self.n_rounds * ROUND_STEP_COUNT

    @property
    def steps_done(self) -> int:
        """Steps finished over all rounds: what a progress bar shows."""
        if self.status == JobStatus.SUCCEEDED:
            return self.steps_total
        if not self.current_round:
            return 0
        position = ROUND_STEPS.index(self.step) if self.step in ROUND_STEPS else 0
        return (self.current_round - 1) * ROUND_STEP_COUNT + position


ROUND_STEPS = (RoundsStep.GENERATE, RoundsStep.LABEL, RoundsStep.SNAPSHOT, RoundsStep.TRAIN)
ROUND_STEP_COUNT = len(ROUND_STEPS)


class Round(models.Model):
    """One round of a `RoundsRun` and what it kept: the model that sampled it, its items (each a copy of a
    source prompt holding the sampled answers, tagged with the run and round in `meta`), the labeler job,
    the snapshot of its AI pairs, the training run, the model it produced and its figures."""

    rounds_run = models.ForeignKey(RoundsRun, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveSmallIntegerField(help_text="1-based.")
    policy = models.ForeignKey(
        ModelArtifact, on_delete=models.PROTECT, related_name="+", help_text="The model that sampled this round."
    )
    item_ids = models.JSONField(default=list, blank=True, help_text="The items this round's answers were stored on.")
    generated_at = models.DateTimeField(null=True, blank=True, help_text="When every answer was stored.")
    labeler_job = models.ForeignKey(
        "annotation.LabelerJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labelled_from = models.DateTimeField(
        null=True, blank=True, help_text="When labelling began: the round's snapshot keeps feedback from then on."
    )
    snapshot = models.ForeignKey(DatasetSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    training_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The model this round trained (it samples the next round).",
    )  # fmt: skip
    figures = models.JSONField(default=dict, blank=True, help_text="Answers, labeler scores, pairs, final loss.")

    class Meta:
        ordering = ["rounds_run_id", "number"]
        constraints = [models.UniqueConstraint(fields=["rounds_run", "number"], name="round_number_unique")]

    def __str__(self) -> str:
        return f"round {self.number} of rounds run {self.rounds_run_id}"
