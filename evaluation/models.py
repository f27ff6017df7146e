"""Benchmark runs and their per-example outputs (design.md §9). The benchmark code is in `evaluation/benchmarks/`."""

from django.conf import settings
from django.db import models

from annotation.models import JobStatus
from training.models import ModelArtifact


class Benchmark(models.TextChoices):
    POPE = "pope", "POPE"
    CHAIR = "chair", "CHAIR"
    CAPTIONS = "captions", "Caption metrics"
    OBJECT_HALBENCH = "object_halbench", "Object HalBench"
    MMHAL = "mmhal", "MMHal (judged)"
    SHR = "shr", "SHR (sentence hallucination ratio)"
    HUMAN_EVAL = "human_eval", "Human evaluation"
    HUMOR = "humor", "Humor win-rate"


class BenchmarkRun(models.Model):
    """One benchmark over one model: its config, progress, log and, once done, its summary metrics.

    The model is a registered `ModelArtifact` (whose lineage the leaderboard shows) or, for one not registered,
    a folder in ``model_path``; CHAIR and caption metrics score files, so there the model only labels the row.
    """

    benchmark = models.CharField(max_length=20, choices=Benchmark.choices)
    model = models.ForeignKey(
        ModelArtifact, null=True, blank=True, on_delete=models.SET_NULL, related_name="benchmark_runs"
    )
    model_path = models.CharField(max_length=500, blank=True, default="", help_text="Folder when no model is set.")
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    log = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    summary = models.JSONField(default=dict, blank=True)
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
        return f"{self.benchmark} run {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def model_label(self) -> str:
        return self.model.name if self.model_id else self.model_path


class BenchmarkExample(models.Model):
    """One scored example of a run: what was asked, what the model answered, and the verdict with its detail."""

    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="examples")
    index = models.PositiveIntegerField()
    key = models.CharField(max_length=200, help_text="Setting/question id, image id or line number.")
    input = models.JSONField(default=dict)
    answer = models.TextField(blank=True, default="")
    detail = models.JSONField(default=dict)
    hallucinated = models.BooleanField(null=True, help_text="Whether the answer hallucinated (None: not judged).")

    class Meta:
        ordering = ["run_id", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="benchmark_example_index_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} example {self.key}"


class RecipeRun(models.Model):
    """One run of a seed recipe (`evaluation.recipes`) started from the admin: its settings, status, log and,
    once finished, the report it wrote (`report.json`, `report.md` beside it)."""

    name = models.CharField(
        max_length=20,
        choices=[(name, name) for name in ("rlhf-v", "rlaif-v", "ha-dpo", "humor", "scicap", "hallucination")],
        help_text="Which recipe (evaluation.recipes.RECIPES says what each does).",
    )
    size = models.CharField(
        max_length=10, default="small", choices=[("small", "small"), ("full", "full")],
        help_text="small: a few items and steps (minutes on a CPU); full: more.",
    )  # fmt: skip
    seed = models.PositiveIntegerField(default=0, help_text="Seed of the data drawn, the split and the training.")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    log = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    report_path = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"recipe {self.name} run {self.pk} ({self.status})"
