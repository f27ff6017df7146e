"""Writes for training: start, execute, cancel, resume and reap runs; register model artifacts.

`training_run_execute` runs inside a Celery worker and is the only function here that imports torch (through
the method module's train function, imported lazily). Config validation uses the methods' config
dataclasses, whose modules import nothing heavy at module level, so the web process stays free of torch.
"""

import dataclasses
import json
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from annotation.models import DatasetSnapshot
from annotation.selectors import snapshot_rows
from loupe.errors import ApplicationError
from training.methods.configs import DDPOConfig, DPOConfig
from training.models import ModelArtifact, RunMetric, RunStatus, TrainingRun

# Method name -> its config dataclass (torch-free, so the web process can validate a config).
METHOD_CONFIGS: dict[str, type] = {"dpo": DPOConfig, "ddpo": DDPOConfig}


def _train_function(method: str) -> Callable[..., Any]:
    """The method's train function; imported here, in the worker, because it brings in torch."""
    if method == "dpo":
        from training.methods.dpo import train_dpo

        return train_dpo
    if method == "ddpo":
        from training.methods.ddpo import train_ddpo

        return train_ddpo
    raise ApplicationError(f"Unknown training method {method!r}.")


def method_config_build(*, method: str, config: dict[str, Any]) -> Any:
    """The method's config dataclass built from `config`, or ApplicationError naming the bad field."""
    if method not in METHOD_CONFIGS:
        raise ApplicationError(
            f"Unknown training method {method!r}; choose one of {', '.join(sorted(METHOD_CONFIGS))}.",
            {"field": "method"},
        )
    config_class = METHOD_CONFIGS[method]
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ApplicationError(
            f"Unknown config field(s) for {method}: {', '.join(unknown)}.", {"field": unknown[0], "known": sorted(known)}
        )
    try:
        return config_class(**config)
    except (TypeError, ValueError) as error:
        raise ApplicationError(f"Invalid {method} config: {error}", {"field": "config"}) from error


@transaction.atomic
def training_run_create(
    *,
    method: str,
    snapshot: DatasetSnapshot,
    base_model: str,
    config: dict[str, Any] | None,
    created_by: AbstractBaseUser | None,
) -> TrainingRun:
    """Validate and queue a training run; a bad config is refused before anything is queued."""
    built = method_config_build(method=method, config=config or {})
    if not base_model.strip():
        raise ApplicationError("A base model (hub name or local folder) is required.", {"field": "base_model"})
    if snapshot.n_train == 0:
        raise ApplicationError("The snapshot has no training rows.", {"field": "snapshot"})
    run = TrainingRun(
        method=method,
        base_model=base_model.strip(),
        snapshot=snapshot,
        config=dataclasses.asdict(built),
        created_by=created_by,
    )
    run.full_clean(exclude=["created_by"])  # runs started from the CLI have no user
    run.save()
    run.output_dir = str(Path(settings.RUNS_DIR) / f"run-{run.pk}")
    run.save(update_fields=["output_dir"])
    _enqueue(run)
    return run


def _enqueue(run: TrainingRun) -> None:
    from training.tasks import training_run_execute_task

    transaction.on_commit(lambda: training_run_execute_task.delay(run.pk))


@transaction.atomic
def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Queued runs end at once; running ones stop after the current step and keep their last checkpoint."""
    if run.status == RunStatus.QUEUED:
        run.status = RunStatus.CANCELLED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
    elif run.status == RunStatus.RUNNING:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
    else:
        raise ApplicationError(f"A {run.status} run cannot be cancelled.")
    return run


@transaction.atomic
def training_run_resume(*, run: TrainingRun) -> TrainingRun:
    """Queue a failed or cancelled run again; it continues from its last checkpoint."""
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise ApplicationError(f"Only failed or cancelled runs can be resumed; this one is {run.status}.")
    run.status = RunStatus.QUEUED
    run.cancel_requested = False
    run.finished_at = None
    run.save(update_fields=["status", "cancel_requested", "finished_at"])
    _enqueue(run)
    return run


def training_runs_reap_dead() -> int:
    """Mark running runs whose heartbeat stopped as failed (their worker died); returns how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    dead = TrainingRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    count = 0
    for run in dead:
        count += TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            log=_log_plus(f"\n[loupe] no heartbeat since {run.heartbeat_at:%Y-%m-%d %H:%M:%S}: the worker died.\n"),
        )
    return count


def _log_plus(text: str) -> Concat:
    """The run's log with `text` appended, computed in the database (`+` would add numbers on SQLite)."""
    return Concat(F("log"), Value(text), output_field=TextField())


def _append_log(run_id: int, text: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(log=_log_plus(text))


class _DatabaseHooks:
    """RunHooks that record progress, metrics and log lines on the run's rows."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def on_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        RunMetric.objects.update_or_create(run_id=self.run_id, step=step, defaults={"values": metrics})
        TrainingRun.objects.filter(pk=self.run_id).update(step=step, max_steps=max_steps, heartbeat_at=timezone.now())

    def should_stop(self) -> bool:
        return TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()

    def on_log_line(self, line: str) -> None:
        _append_log(self.run_id, line.rstrip("\n") + "\n")


class _Heartbeat(threading.Thread):
    """Beats every few seconds while a step runs, so a long step is not taken for a dead worker."""

    def __init__(self, run_id: int, every: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.run_id, self.every, self.stopped = run_id, every, threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stopped.wait(self.every):
                TrainingRun.objects.filter(pk=self.run_id).update(heartbeat_at=timezone.now())
        finally:
            connection.close()


def _write_training_files(
    *, snapshot: DatasetSnapshot, run_dir: Path, with_images: bool
) -> tuple[Path, Path | None]:
    """The snapshot's train and test rows as TRL preference JSONL (images as absolute paths, for a VLM)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"train": run_dir / "train.jsonl", "test": run_dir / "test.jsonl"}
    handles = {split: path.open("w", encoding="utf-8") for split, path in paths.items()}
    counts = {"train": 0, "test": 0}
    media = Path(settings.MEDIA_ROOT)
    try:
        for row in snapshot_rows(snapshot=snapshot):
            record = {
                "prompt": row["prompt"],
                "chosen": row["chosen"],
                "rejected": row["rejected"],
                "chosen_spans": row["chosen_spans"],
                "rejected_spans": row["rejected_spans"],
            }
            if with_images and row["image"]:
                record["images"] = [str(media / row["image"])]
            handles[row["split"]].write(json.dumps(record, ensure_ascii=False) + "\n")
            counts[row["split"]] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return paths["train"], paths["test"] if counts["test"] else None


def training_run_execute(*, run_id: int) -> None:
    """Run a queued training run to its end in this process (a Celery worker on the `training` queue)."""
    claimed = TrainingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return  # Already taken by another delivery of this task, cancelled, or finished: nothing to do.
    run = TrainingRun.objects.select_related("snapshot").get(pk=run_id)
    output_dir = Path(run.output_dir)
    resume = (output_dir / "checkpoints").is_dir() and any((output_dir / "checkpoints").iterdir())
    _append_log(run_id, f"[loupe] {'resuming' if resume else 'starting'} {run.method} on {run.base_model}\n")
    heartbeat = _Heartbeat(run_id)
    heartbeat.start()
    try:
        from training.core import is_vision_model

        config = method_config_build(method=run.method, config=run.config)
        # A text-only model trains on the prompt and answers alone; a vision-language model also sees the image.
        train_path, test_path = _write_training_files(
            snapshot=run.snapshot, run_dir=output_dir / "data", with_images=is_vision_model(run.base_model)
        )
        result = _train_function(run.method)(
            config=config,
            train_path=train_path,
            eval_path=test_path,
            base_model=run.base_model,
            output_dir=output_dir / "model",
            hooks=_DatabaseHooks(run_id),
            resume=resume,
        )
    except BaseException:
        heartbeat.stopped.set()
        TrainingRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), log=_log_plus(traceback.format_exc())
        )
        raise
    heartbeat.stopped.set()
    with transaction.atomic():
        if result.stopped_early:
            TrainingRun.objects.filter(pk=run_id).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
            _append_log(run_id, f"[loupe] cancelled at step {result.steps}; the last checkpoint is kept\n")
            return
        ModelArtifact.objects.update_or_create(
            name=f"run-{run_id}-{run.method}",
            defaults={"location": str(result.output_dir), "produced_by": run, "is_adapter": False},
        )
        TrainingRun.objects.filter(pk=run_id).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
        _append_log(run_id, f"[loupe] succeeded after {result.steps} steps; model in {result.output_dir}\n")
