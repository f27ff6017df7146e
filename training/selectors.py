"""Reads for the training app: runs, their metrics and ETA, model artifacts, and the methods' settings."""

import dataclasses
import typing
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from loupe.failures import FAILURE_PREFIX
from training.checkpoints import last_complete_checkpoint
from training.models import JobStatus, ModelArtifact, Round, RoundsRun, RunMetric, TrainingRun

ETA_WINDOW = 20  # steps whose timing predicts the rest


def training_run_list() -> QuerySet[TrainingRun]:
    return TrainingRun.objects.select_related("snapshot__project", "base_artifact").order_by("-id")


def training_run_metrics(*, run: TrainingRun) -> list[dict]:
    """Per-step metrics of a run, oldest first, as {"step": n, **values}."""
    return [
        {"step": step, **values} for step, values in RunMetric.objects.filter(run=run).values_list("step", "values")
    ]


def training_run_eta_seconds(*, run: TrainingRun) -> float | None:
    """Seconds until a running run reaches its last step, from the pace of its recent steps in this attempt.

    None when it is not running or fewer than two steps of the current attempt have been logged.
    """
    if run.status != JobStatus.RUNNING or not run.max_steps or run.step >= run.max_steps or run.started_at is None:
        return None  # (a row set running by hand, in the admin, has no start time)
    recent = list(
        RunMetric.objects.filter(run=run, logged_at__gte=run.started_at)
        .order_by("-step")
        .values_list("step", "logged_at")[:ETA_WINDOW]
    )
    if len(recent) < 2:
        return None
    (last_step, last_at), (first_step, first_at) = recent[0], recent[-1]
    seconds = (last_at - first_at).total_seconds()
    if last_step <= first_step or seconds <= 0:
        return None
    return (run.max_steps - run.step) * seconds / (last_step - first_step)


BEST_OF_N_FILE = "best.jsonl"


def training_run_failure_cause(*, run: TrainingRun) -> str | None:
    """A failed run's cause in one line (the log keeps the traceback); None unless the run failed.

    The cause is the last `[loupe] failed:` line; a run that failed before that line existed shows its log's
    last line (a traceback ends with the exception and its message)."""
    if run.status != JobStatus.FAILED:
        return None
    lines = [line.strip() for line in run.log.splitlines() if line.strip()]
    causes = [line.removeprefix(FAILURE_PREFIX) for line in lines if line.startswith(FAILURE_PREFIX)]
    cause = causes[-1] if causes else (lines[-1] if lines else "The run failed without a message.")
    return cause[:500]


def checkpoint_in(model_dir: Path) -> str | None:
    """What a resume continues from in a run's model folder: the latest complete `checkpoints/checkpoint-N`
    folder, or best-of-N's answers file; None when an earlier attempt left nothing to continue from."""
    checkpoint = last_complete_checkpoint(model_dir / "checkpoints")
    if checkpoint is not None:
        return checkpoint.name
    return BEST_OF_N_FILE if (model_dir / BEST_OF_N_FILE).is_file() else None


def training_run_last_checkpoint(*, run: TrainingRun) -> str | None:
    """The checkpoint a resume of `run` would continue from (e.g. `checkpoint-20`), or None."""
    if not run.output_dir:
        return None
    return checkpoint_in(Path(run.output_dir) / "model")


def rounds_run_list() -> QuerySet[RoundsRun]:
    return RoundsRun.objects.select_related("project", "base_artifact").order_by("-id")


def rounds_of_run(*, rounds_run: RoundsRun) -> QuerySet[Round]:
    """A rounds run's rounds, first first, with what each kept."""
    return Round.objects.filter(rounds_run=rounds_run).select_related(
        "policy", "model", "labeler_job", "snapshot", "training_run"
    )


def model_artifact_list() -> QuerySet[ModelArtifact]:
    return ModelArtifact.objects.select_related("base", "snapshot__project", "produced_by").order_by("-id")


def _type_name(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return text.replace("typing.", "")


def method_settings(*, config_class: type) -> list[dict[str, Any]]:
    """A config dataclass's fields as {"name", "type", "default", "help"}: what forms and the API show."""
    hints = typing.get_type_hints(config_class)
    rows = []
    for f in dataclasses.fields(config_class):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append(
            {
                "name": f.name,
                "type": _type_name(hints.get(f.name, f.type)),
                "default": default,
                "help": f.metadata.get("help", ""),
            }
        )
    return rows


def training_methods() -> list[dict[str, Any]]:
    """Every training method with its one-line description and its settings."""
    from training.services import METHOD_CONFIGS

    return [
        {
            "method": method,
            "description": (config_class.__doc__ or "").strip().splitlines()[0],
            "settings": method_settings(config_class=config_class),
            "defaults": {row["name"]: row["default"] for row in method_settings(config_class=config_class)},
        }
        for method, config_class in METHOD_CONFIGS.items()
    ]
