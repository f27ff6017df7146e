"""Writes for benchmark runs: start (validate the config, queue), execute (in the worker), cancel, reap dead.

`benchmark_run_execute` runs in a Celery worker on the `benchmark` queue; it alone loads a model (torch, through
`evaluation.runners.model_answerer`, imported lazily). Validation is torch-free, so the web process refuses a
bad config before anything is queued.

Configs (paths are on the server):
- pope: ``{"questions": [FILE, ...], "images": DIR}`` or ``{"shapes": {"n_images", "seed", "settings"}}`` (scenes
  drawn and written into the run's folder), plus ``batch_size`` (8), ``max_new_tokens`` (16), ``limit``; needs a
  model.
- chair: ``{"captions": FILE, "annotations": [FILE, ...], "synonyms": FILE (optional)}``.
- captions: ``{"predictions": FILE, "references": FILE, "meteor": true}``.
"""

import threading
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import JobStatus
from evaluation import runners, selectors
from evaluation.models import Benchmark, BenchmarkExample, BenchmarkRun
from evaluation.runners import BenchmarkOutcome, Cancelled, InputError
from loupe.db import log_appended
from loupe.errors import ApplicationError
from training.models import ModelArtifact

POPE_SETTINGS = ("random", "popular", "adversarial")
_KEYS: dict[str, set[str]] = {
    "pope": {"questions", "images", "shapes", "batch_size", "max_new_tokens", "limit"},
    "chair": {"captions", "annotations", "synonyms"},
    "captions": {"predictions", "references", "meteor"},
}


def _file(config: dict[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not Path(value).is_file():
        raise ApplicationError(f"config.{key} must be the path of an existing file.", {"field": f"config.{key}"})
    return value


def _files(config: dict[str, Any], key: str) -> list[str]:
    value = config.get(key)
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value:
        raise ApplicationError(f"config.{key} must list at least one file.", {"field": f"config.{key}"})
    for i, path in enumerate(value):
        if not isinstance(path, str) or not Path(path).is_file():
            raise ApplicationError(f"config.{key}[{i}]: no such file {path!r}.", {"field": f"config.{key}"})
    return value


def _positive_int(config: dict[str, Any], key: str, default: int | None) -> int | None:
    value = config.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ApplicationError(f"config.{key} must be a whole number of at least 1.", {"field": f"config.{key}"})
    return value


def benchmark_config_check(*, benchmark: str, config: dict[str, Any], model_dir: str) -> dict[str, Any]:
    """The config with its defaults filled in, or an ApplicationError naming the field at fault."""
    if benchmark not in Benchmark.values:
        raise ApplicationError(f"Unknown benchmark {benchmark!r}; choose one of {', '.join(Benchmark.values)}.")
    unknown = sorted(set(config) - _KEYS[benchmark])
    if unknown:
        raise ApplicationError(f"Unknown {benchmark} setting {unknown[0]!r}.", {"field": f"config.{unknown[0]}"})
    if benchmark == "chair":
        out = {"captions": _file(config, "captions"), "annotations": _files(config, "annotations")}
        out["synonyms"] = _file(config, "synonyms") if "synonyms" in config else str(runners.DEFAULT_SYNONYMS)
        return out
    if benchmark == "captions":
        return {
            "predictions": _file(config, "predictions"),
            "references": _file(config, "references"),
            "meteor": bool(config.get("meteor", True)),
        }
    if not model_dir:
        raise ApplicationError("POPE needs a model that answers: give a model or a model_path.", {"field": "model"})
    out = {
        "batch_size": _positive_int(config, "batch_size", 8),
        "max_new_tokens": _positive_int(config, "max_new_tokens", 16),
        "limit": _positive_int(config, "limit", None),
    }
    if "shapes" in config:
        shapes = config["shapes"] if isinstance(config["shapes"], dict) else {}
        chosen = shapes.get("settings", list(POPE_SETTINGS))
        if not isinstance(chosen, list) or not chosen or any(s not in POPE_SETTINGS for s in chosen):
            raise ApplicationError(f"config.shapes.settings must list some of {', '.join(POPE_SETTINGS)}.")
        out["shapes"] = {
            "n_images": _positive_int(shapes, "n_images", 10),
            "seed": int(shapes.get("seed", 0)),
            "settings": chosen,
        }
        return out
    out["questions"] = _files(config, "questions")
    if not isinstance(config.get("images"), str) or not Path(config["images"]).is_dir():
        raise ApplicationError(
            "config.images must be the folder holding the questions' images.", {"field": "config.images"}
        )
    out["images"] = config["images"]
    return out


@transaction.atomic
def benchmark_run_start(
    *,
    benchmark: str,
    config: dict[str, Any],
    model: ModelArtifact | None = None,
    model_path: str = "",
    created_by: AbstractBaseUser | None = None,
) -> BenchmarkRun:
    """Validate and queue a run on the `benchmark` queue."""
    model_dir = model.location if model is not None else model_path.strip()
    if benchmark == "pope" and model_dir and not Path(model_dir).is_dir():
        raise ApplicationError(f"Model folder {model_dir!r} does not exist.", {"field": "model_path"})
    checked = benchmark_config_check(benchmark=benchmark, config=config, model_dir=model_dir)
    run = BenchmarkRun(
        benchmark=benchmark,
        model=model,
        model_path="" if model else model_path.strip(),
        config=checked,
        created_by=created_by,
    )
    run.full_clean()
    run.save()
    from evaluation.tasks import benchmark_run_execute_task

    transaction.on_commit(lambda: benchmark_run_execute_task.delay(run.pk))
    return run


@transaction.atomic
def benchmark_run_cancel(*, run: BenchmarkRun) -> BenchmarkRun:
    """Queued runs end at once; running ones stop after the current batch."""
    run = BenchmarkRun.objects.select_for_update().get(pk=run.pk)
    if run.status == JobStatus.QUEUED:
        run.status = JobStatus.CANCELLED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
    elif run.status == JobStatus.RUNNING:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
    else:
        raise ApplicationError(f"A {run.status} run cannot be cancelled.")
    return run


def benchmark_runs_reap_dead() -> int:
    """Mark running runs whose heartbeat stopped as failed (their worker died); returns how many.

    On the embedded broker a killed worker's task is never delivered again, so the run's heartbeat is what tells
    a dead run from a live one. Called when a worker starts and whenever runs are listed.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    return BenchmarkRun.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
        status=JobStatus.FAILED,
        finished_at=timezone.now(),
        error="The worker stopped (no heartbeat); start the run again.",
        log=log_appended("\n[loupe] no heartbeat: the worker died\n"),
    )


class _Heartbeat(threading.Thread):
    """Beats while a batch runs, so a slow batch (a large model) is not taken for a dead worker."""

    def __init__(self, run_id: int) -> None:
        super().__init__(daemon=True)
        self.run_id, self.stopped = run_id, threading.Event()
        self.every = max(0.2, min(10.0, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS / 4))

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stopped.wait(self.every):
                BenchmarkRun.objects.filter(pk=self.run_id, status=JobStatus.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()


def _log(run_id: int, text: str) -> None:
    BenchmarkRun.objects.filter(pk=run_id).update(log=log_appended(text))


def _progress(run_id: int):  # noqa: ANN202
    def report(done: int, total: int) -> None:
        BenchmarkRun.objects.filter(pk=run_id).update(done=done, total=total, heartbeat_at=timezone.now())
        if BenchmarkRun.objects.filter(pk=run_id, cancel_requested=True).exists():
            raise Cancelled

    return report


def _outcome(run: BenchmarkRun) -> BenchmarkOutcome:
    config, progress = run.config, _progress(run.pk)
    if run.benchmark == "chair":
        return runners.chair_run(
            captions=config["captions"],
            annotations=config["annotations"],
            synonyms=config["synonyms"],
            progress=progress,
        )
    if run.benchmark == "captions":
        return runners.captions_run(
            predictions=config["predictions"],
            references=config["references"],
            meteor=config["meteor"],
            progress=progress,
        )
    if "shapes" in config:
        image_dir = selectors.benchmark_image_dir(run=run)
        questions = runners.pope_shapes_questions(**config["shapes"], image_dir=image_dir)
    else:
        image_dir = Path(config["images"])
        questions = runners.pope_read(questions=config["questions"], images=config["images"], limit=config["limit"])
    if config.get("limit"):
        questions = {name: rows[: config["limit"]] for name, rows in questions.items()}
    model_dir = run.model.location if run.model_id else run.model_path
    _log(run.pk, f"[loupe] loading {model_dir}\n")
    answerer = runners.model_answerer(model=model_dir, image_dir=image_dir, max_new_tokens=config["max_new_tokens"])
    return runners.pope_run(
        questions=questions, generate_fn=answerer, batch_size=config["batch_size"], progress=progress
    )


def benchmark_run_execute(*, run_id: int) -> None:
    """Run a queued benchmark run to its end: examples and summary stored, or the failure and its log recorded.

    Idempotent: only a QUEUED run is claimed, so a second delivery of the task does nothing.
    """
    claimed = BenchmarkRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    run = BenchmarkRun.objects.select_related("model").get(pk=run_id)
    _log(run_id, f"[loupe] starting {run.benchmark} on {run.model_label or 'files'}\n")
    heartbeat = _Heartbeat(run_id)
    heartbeat.start()
    try:
        outcome = _outcome(run)
    except Cancelled:
        BenchmarkRun.objects.filter(pk=run_id).update(status=JobStatus.CANCELLED, finished_at=timezone.now())
        _log(run_id, "[loupe] cancelled\n")
        return
    except Exception as exc:
        # An input error is the user's to fix: its message is the error. Anything else keeps its traceback.
        message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        BenchmarkRun.objects.filter(pk=run_id).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), error=message
        )
        _log(run_id, traceback.format_exc())
        return
    finally:
        heartbeat.stopped.set()
    with transaction.atomic():
        BenchmarkExample.objects.filter(run_id=run_id).delete()
        BenchmarkExample.objects.bulk_create(
            [
                BenchmarkExample(
                    run_id=run_id,
                    index=i,
                    key=example["key"][:200],
                    input=example["input"],
                    answer=example["answer"],
                    detail=example["detail"],
                    hallucinated=example["hallucinated"],
                )
                for i, example in enumerate(outcome.examples)
            ],
            batch_size=500,
        )
        BenchmarkRun.objects.filter(pk=run_id).update(
            status=JobStatus.SUCCEEDED, finished_at=timezone.now(), summary=outcome.summary
        )
    _log(run_id, f"[loupe] succeeded: {len(outcome.examples)} examples\n")
