"""Training runs and the models Loupe knows (design.md §4, §7)."""

from django.conf import settings
from django.db import models

from annotation.models import DatasetSnapshot


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


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class TrainingRun(models.Model):
    method = models.CharField(max_length=20)
    base_model = models.CharField(max_length=500, help_text="Hub name or local folder of the base model.")
    base_artifact = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.PROTECT, related_name="training_runs")
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
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
