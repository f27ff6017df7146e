"""Reads for the training app."""

from django.db.models import QuerySet

from training.models import RunMetric, TrainingRun


def training_run_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("snapshot__project").order_by("-id")


def training_run_metrics(*, run: TrainingRun) -> list[dict]:
    """Per-step metrics of a run, oldest first, as {"step": n, **values}."""
    return [{"step": step, **values} for step, values in RunMetric.objects.filter(run=run).values_list("step", "values")]
