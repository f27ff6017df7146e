"""Writes for training: start, execute, cancel, resume and reap runs; register and merge model artifacts.

`training_run_execute` and `model_artifact_merge_execute` run inside a Celery worker and are the only
functions here that import torch (through the method modules, imported lazily). Config validation uses the
methods' config dataclasses (`training.methods.configs`, torch-free), so the web process refuses a bad config
before anything is queued and never imports torch.
"""

import dataclasses
import importlib
import json
import re
import shlex
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import DatasetSnapshot
from annotation.selectors import snapshot_rows
from annotation.services.snapshots import snapshot_kind
from loupe.db import Heartbeat, log_appended, run_cancel
from loupe.errors import ApplicationError
from loupe.failures import failure_log
from training.methods.configs import (
    BestOfNConfig,
    DDPOConfig,
    DPOConfig,
    GRPOConfig,
    PPOConfig,
    RewardConfig,
    RLOOConfig,
    SFTConfig,
)
from training.models import ArtifactKind, JobStatus, ModelArtifact, RunMetric, TrainingRun
from training.selectors import BEST_OF_N_FILE, FAILURE_PREFIX, checkpoint_in, training_run_last_checkpoint

# Method name -> its config dataclass (torch-free, so the web process can validate a config).
METHOD_CONFIGS: dict[str, type] = {
    "sft": SFTConfig,
    "reward": RewardConfig,
    "dpo": DPOConfig,
    "ddpo": DDPOConfig,
    "ppo": PPOConfig,
    "grpo": GRPOConfig,
    "rloo": RLOOConfig,
    "best_of_n": BestOfNConfig,
}
# Method name -> (module, function) of its train function, imported only in the worker (it brings in torch).
_TRAIN_FUNCTIONS: dict[str, tuple[str, str]] = {
    "sft": ("training.methods.sft", "train_sft"),
    "reward": ("training.methods.reward", "train_reward"),
    "dpo": ("training.methods.dpo", "train_dpo"),
    "ddpo": ("training.methods.ddpo", "train_ddpo"),
    "ppo": ("training.methods.ppo", "train_ppo"),
    "grpo": ("training.methods.grpo", "train_grpo"),
    "rloo": ("training.methods.grpo", "train_rloo"),
    "best_of_n": ("training.methods.best_of_n", "run_best_of_n"),
}
# What a successful run of each method leaves: a model artifact of this kind, or (best-of-N) a file of answers.
METHOD_OUTPUT_KIND: dict[str, str | None] = {
    **dict.fromkeys(METHOD_CONFIGS, ArtifactKind.POLICY),
    "reward": ArtifactKind.REWARD,
    "best_of_n": None,
}
# Which snapshot kinds each method reads: pair methods need pairs; SFT also takes an `sft` snapshot (rated
# answers with their control tokens); online methods and best-of-N need prompts only, which every kind has.
METHOD_SNAPSHOT_KINDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("reward", "dpo", "ddpo"), ("pairs",)),
    **dict.fromkeys(("sft", "ppo", "grpo", "rloo", "best_of_n"), ("pairs", "sft")),
}


def _train_function(method: str) -> Callable[..., Any]:
    """The method's train function; imported here, in the worker, because it brings in torch."""
    if method not in _TRAIN_FUNCTIONS:
        raise ApplicationError(f"Unknown training method {method!r}.")
    module, name = _TRAIN_FUNCTIONS[method]
    return getattr(importlib.import_module(module), name)


def method_config_build(*, method: str, config: dict[str, Any]) -> Any:
    """The method's config dataclass built from `config`, or ApplicationError naming the bad field."""
    if method not in METHOD_CONFIGS:
        raise ApplicationError(
            f"Unknown training method {method!r}; choose one of {', '.join(sorted(METHOD_CONFIGS))}.",
            {"field": "method"},
        )
    if not isinstance(config, dict):
        raise ApplicationError("The config must be a JSON object of setting names and values.", {"field": "config"})
    config_class = METHOD_CONFIGS[method]
    # Benchmarks to queue when the run succeeds are not a method setting (training_run_create checks them).
    config = {k: v for k, v in config.items() if k != "benchmarks"}
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ApplicationError(
            f"Unknown config field(s) for {method}: {', '.join(unknown)}.",
            {"field": unknown[0], "known": sorted(known)},
        )
    try:
        return config_class(**config)
    except (TypeError, ValueError, OverflowError) as error:
        # The configs' messages start with the setting at fault ("max_steps must be ..."): name it.
        named = next((name for name in sorted(known, key=len, reverse=True) if str(error).startswith(name)), None)
        raise ApplicationError(f"Invalid {method} config: {error}", {"field": named or "config"}) from error


@transaction.atomic
def training_run_create(
    *,
    method: str,
    snapshot: DatasetSnapshot,
    base_model: str = "",
    base_artifact: ModelArtifact | None = None,
    config: dict[str, Any] | None,
    created_by: AbstractBaseUser | None,
) -> TrainingRun:
    """Validate and queue a training run; the method, the config, the base model and the snapshot's kind are
    checked, and a bad one is refused (ApplicationError naming the field) before anything is queued.

    The base is a registered model (`base_artifact`, or its name in `base_model`: its location is used and it
    becomes the output's lineage) or a local model folder (`base_model`); see `base_model_check`.
    """
    built = method_config_build(method=method, config=config or {})
    if "benchmarks" in (config or {}):
        from evaluation.services import benchmarks_after_training_check

        benchmarks_after_training_check(benchmarks=config["benchmarks"])
    if base_artifact is None:
        base_artifact = base_model_check(base_model=base_model)
    if base_artifact is None:  # a local folder: absolute, so the worker finds it whatever its working folder
        base_model = str(Path(base_model.strip()).expanduser().absolute())
    if base_artifact is not None:
        if base_artifact.is_adapter:
            raise ApplicationError(
                f"{base_artifact.name} is a LoRA adapter; merge it into a full model first.", {"field": "base_model"}
            )
        if base_artifact.kind == ArtifactKind.REWARD and method != "reward":
            raise ApplicationError(
                f"{base_artifact.name} is a reward model; {method} trains a policy. Use it as reward_model instead.",
                {"field": "base_model"},
            )
        base_model = base_artifact.location
    kind = snapshot_kind(snapshot)
    if kind not in METHOD_SNAPSHOT_KINDS[method]:
        raise ApplicationError(
            f"{method} reads {' or '.join(METHOD_SNAPSHOT_KINDS[method])} snapshots; snapshot #{snapshot.pk} holds "
            f"{kind} rows. Freeze a {METHOD_SNAPSHOT_KINDS[method][0]} snapshot of the project.",
            {"field": "snapshot"},
        )
    if snapshot.n_train == 0 and not (method == "best_of_n" and built.split != "train"):
        raise ApplicationError("The snapshot has no training rows.", {"field": "snapshot"})
    if method == "best_of_n" and built.split == "test" and snapshot.n_test == 0:
        raise ApplicationError("The snapshot has no test rows to sample prompts from.", {"field": "config"})
    run = TrainingRun(
        method=method,
        base_model=base_model.strip(),
        base_artifact=base_artifact,
        snapshot=snapshot,
        config={
            **dataclasses.asdict(built),
            **({"benchmarks": config["benchmarks"]} if (config or {}).get("benchmarks") else {}),
        },
        max_steps=getattr(built, "max_steps", 0),
        created_by=created_by,
    )
    run.full_clean()
    run.save()
    run.output_dir = str(Path(settings.RUNS_DIR) / f"run-{run.pk}")
    run.save(update_fields=["output_dir"])
    _enqueue(run)
    return run


def base_model_check(*, base_model: str) -> ModelArtifact | None:
    """The registered model `base_model` names (by name, else by location), or None when it is a local model
    folder (one with a config.json); anything else is refused, naming `base_model`.

    A hub name is refused unless it is registered: a worker trains offline and cannot download it, so the run
    would fail on its first line. Registering a model (`POST /api/v1/models/`, the admin's Model artifacts) is
    the admin saying it is there (in the worker's hub cache, say)."""
    reference = base_model.strip()
    if not reference:
        raise ApplicationError(
            "A base model is required: a model folder, or a registered model (base_artifact or its name).",
            {"field": "base_model"},
        )
    registered = (
        ModelArtifact.objects.filter(name=reference).first()
        or ModelArtifact.objects.filter(location=reference, is_adapter=False).order_by("id").first()
    )
    if registered is not None:
        return registered
    folder = Path(reference).expanduser()
    if (folder / "config.json").is_file():
        return None
    if (folder / "adapter_config.json").is_file():
        raise ApplicationError(
            f"{reference} is a LoRA adapter, not a full model: register it as an adapter (POST /api/v1/models/ "
            "with is_adapter) and merge it on /models/ first.",
            {"field": "base_model"},
        )
    if folder.is_dir():
        raise ApplicationError(
            f"{reference} has no config.json: it is not a model folder (from_pretrained could not load it).",
            {"field": "base_model"},
        )
    raise ApplicationError(
        f"No model folder {reference} and no registered model of that name. Give a local folder with "
        "config.json, or a registered model; hub names are refused because training runs offline: download "
        "the model and give its folder, or register it (POST /api/v1/models/ or the admin's Model artifacts).",
        {"field": "base_model"},
    )


def _enqueue(run: TrainingRun) -> None:
    from training.tasks import training_run_execute_task

    transaction.on_commit(lambda: training_run_execute_task.delay(run.pk))


@transaction.atomic
def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Queued runs end at once; running ones stop after the current step and keep their last checkpoint."""
    return run_cancel(TrainingRun, run.pk)


@transaction.atomic
def training_run_resume(*, run: TrainingRun) -> TrainingRun:
    """Queue a failed or cancelled run again: it continues from its last checkpoint, or starts again from the
    beginning when it has none (the log says which)."""
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ApplicationError(f"Only failed or cancelled runs can be resumed; this one is {run.status}.")
    run.status = JobStatus.QUEUED
    run.cancel_requested = False
    run.finished_at = None
    run.save(update_fields=["status", "cancel_requested", "finished_at"])
    checkpoint = training_run_last_checkpoint(run=run)
    where = f"from {checkpoint}" if checkpoint else "from the beginning (no checkpoint was saved)"
    TrainingRun.objects.filter(pk=run.pk).update(log=log_appended(f"[loupe] resume requested: {where}\n"))
    _enqueue(run)
    return run


def training_runs_reap_dead() -> int:
    """Mark running runs whose heartbeat stopped as failed (their worker died); returns how many.

    On the embedded broker a killed worker's task is never delivered again, so the run's own heartbeat is
    what tells a dead run from a live one. Called when a worker starts and whenever runs are read.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    dead = TrainingRun.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
    count = 0
    for run in dead:
        checkpoint = training_run_last_checkpoint(run=run)
        resume = f"Resume continues from {checkpoint}." if checkpoint else "No checkpoint: resume starts again."
        count += TrainingRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            log=log_appended(
                f"\n[loupe] no heartbeat since {run.heartbeat_at:%Y-%m-%d %H:%M:%S}: the worker died at step "
                f"{run.step}. {resume}\n{FAILURE_PREFIX}the worker stopped at step {run.step} (no heartbeat).\n"
            ),
        )
    return count


def _append_log(run_id: int, text: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(log=log_appended(text))


class DatabaseHooks:
    """RunHooks that record progress, metrics and log lines on the run's rows."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def on_step(self, step: int, max_steps: int, metrics: dict[str, float]) -> None:
        # Training and evaluation metrics of one step arrive separately: merge them into the step's row.
        with transaction.atomic():
            row, created = RunMetric.objects.get_or_create(run_id=self.run_id, step=step, defaults={"values": metrics})
            if not created:
                row.values = {**row.values, **metrics}
                row.save(update_fields=["values"])
        TrainingRun.objects.filter(pk=self.run_id).update(step=step, max_steps=max_steps, heartbeat_at=timezone.now())

    def should_stop(self) -> bool:
        return TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()

    def on_log_line(self, line: str) -> None:
        _append_log(self.run_id, line.rstrip("\n") + "\n")


def _write_training_files(*, snapshot: DatasetSnapshot, run_dir: Path, with_images: bool) -> tuple[Path, Path | None]:
    """The snapshot's train and test rows as TRL JSONL (images as absolute paths, for a VLM): preference rows
    for a pairs snapshot, prompt/completion rows for an sft one."""
    pairs = snapshot_kind(snapshot) == "pairs"
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"train": run_dir / "train.jsonl", "test": run_dir / "test.jsonl"}
    handles = {split: path.open("w", encoding="utf-8") for split, path in paths.items()}
    counts = {"train": 0, "test": 0}
    media = Path(settings.MEDIA_ROOT)
    try:
        for row in snapshot_rows(snapshot=snapshot):
            if pairs:
                record = {
                    "prompt": row["prompt"],
                    "chosen": row["chosen"],
                    "rejected": row["rejected"],
                    "chosen_spans": row["chosen_spans"],
                    "rejected_spans": row["rejected_spans"],
                }
            else:
                record = {"prompt": row["prompt"], "completion": row["completion"]}
            if with_images and row["image"]:
                record["images"] = [str(media / row["image"])]
            handles[row["split"]].write(json.dumps(record, ensure_ascii=False) + "\n")
            counts[row["split"]] += 1
    finally:
        for handle in handles.values():
            handle.close()
    return paths["train"], paths["test"] if counts["test"] else None


def _has_progress(model_dir: Path) -> bool:
    """Whether an earlier attempt of this run left something to continue from."""
    return checkpoint_in(model_dir) is not None


def _data_paths(output_dir: Path) -> tuple[Path, Path | None]:
    train_path, test_path = output_dir / "data" / "train.jsonl", output_dir / "data" / "test.jsonl"
    return train_path, test_path if test_path.is_file() and test_path.stat().st_size else None


def training_run_train(*, run_id: int, resume: bool, hooks: Any) -> tuple[Any, Path]:
    """Train a claimed run whose data files are written, in this process; returns ``(TrainResult, run dir)``.

    The worker calls it directly, or each process of a launched run does (`training.launch`).
    """
    run = TrainingRun.objects.get(pk=run_id)
    output_dir = Path(run.output_dir)
    train_path, test_path = _data_paths(output_dir)
    config = method_config_build(method=run.method, config=run.config)
    result = _train_function(run.method)(
        config=config,
        train_path=train_path,
        eval_path=test_path,
        base_model=run.base_model,
        output_dir=output_dir / "model",
        hooks=hooks,
        resume=resume,
    )
    return result, output_dir


RESULT_FILE = "result.json"


def _train_with_launcher(*, run: TrainingRun, launcher: str, resume: bool) -> SimpleNamespace:
    """Run `python -m training.launch` under `launcher` (accelerate launch, torchrun, ...) and read its result."""
    output_dir = Path(run.output_dir)
    (output_dir / RESULT_FILE).unlink(missing_ok=True)
    command = [*shlex.split(launcher), "-m", "training.launch", str(run.pk), *(["--resume"] if resume else [])]
    _append_log(run.pk, f"[loupe] launching: {shlex.join(command)}\n")
    log_path = output_dir / "launcher.log"
    with log_path.open("ab") as log:
        finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    if finished.returncode != 0 or not (output_dir / RESULT_FILE).is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
        raise RuntimeError(f"the launched training exited with code {finished.returncode}:\n{tail}")
    result = json.loads((output_dir / RESULT_FILE).read_text(encoding="utf-8"))
    return SimpleNamespace(
        steps=result["steps"], stopped_early=result["stopped_early"], output_dir=Path(result["output_dir"])
    )


def training_run_execute(*, run_id: int) -> None:
    """Run a queued training run to its end (in a Celery worker on the `training` queue).

    It trains in this process, or, when `LOUPE_TRAIN_LAUNCHER` names a launcher, in the processes that
    launcher starts (several GPUs); either way the run's rows show its progress and this process beats.
    """
    claimed = TrainingRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return  # Already taken by another delivery of this task, cancelled, or finished: nothing to do.
    run = TrainingRun.objects.select_related("snapshot").get(pk=run_id)
    output_dir = Path(run.output_dir)
    resume = _has_progress(output_dir / "model")
    _append_log(run_id, f"[loupe] {'resuming' if resume else 'starting'} {run.method} on {run.base_model}\n")
    heartbeat = Heartbeat(TrainingRun.objects.filter(pk=run_id, status=JobStatus.RUNNING))
    heartbeat.start()
    try:
        from training.core import is_vision_model

        method_config_build(method=run.method, config=run.config)
        # A text-only model trains on the prompt and answers alone; a vision-language model also sees the image.
        _write_training_files(
            snapshot=run.snapshot, run_dir=output_dir / "data", with_images=is_vision_model(run.base_model)
        )
        launcher = settings.LOUPE_TRAIN_LAUNCHER.strip()
        if launcher:
            result = _train_with_launcher(run=run, launcher=launcher, resume=resume)
        else:
            result, _ = training_run_train(run_id=run_id, resume=resume, hooks=DatabaseHooks(run_id))
    except BaseException as error:
        heartbeat.stop()
        TrainingRun.objects.filter(pk=run_id).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            # The traceback for whoever debugs it, then the cause in one line for the run page.
            log=log_appended(failure_log(error)),
        )
        raise
    heartbeat.stop()
    _finish(run=run, result=result)


def _finish(*, run: TrainingRun, result: Any) -> None:
    """Record how a run ended; a completed one registers its model artifact with its lineage."""
    from training.core import read_model_info

    run_id = run.pk
    with transaction.atomic():
        if result.stopped_early:
            TrainingRun.objects.filter(pk=run_id).update(status=JobStatus.CANCELLED, finished_at=timezone.now())
            checkpoint = training_run_last_checkpoint(run=run)
            kept = f"{checkpoint} is kept" if checkpoint else "no checkpoint was saved yet"
            _append_log(run_id, f"[loupe] cancelled at step {result.steps}; {kept}\n")
            return
        kind = METHOD_OUTPUT_KIND[run.method]
        if kind is None:
            where = result.output_dir / BEST_OF_N_FILE
        else:
            where = result.output_dir
            artifact, _ = ModelArtifact.objects.update_or_create(
                name=f"run-{run_id}-{run.method}",
                defaults={
                    "location": str(result.output_dir),
                    "kind": kind,
                    "produced_by": run,
                    "base": run.base_artifact,
                    "base_name": run.base_model,
                    "snapshot": run.snapshot,
                    "is_adapter": bool(read_model_info(result.output_dir).get("is_adapter")),
                },
            )
        TrainingRun.objects.filter(pk=run_id).update(
            status=JobStatus.SUCCEEDED, finished_at=timezone.now(), step=result.steps
        )
        _append_log(run_id, f"[loupe] succeeded after {result.steps} steps; output in {where}\n")
        if kind is not None and run.config.get("benchmarks"):
            from evaluation.services import benchmark_runs_after_training

            _append_log(run_id, benchmark_runs_after_training(run=run, artifact=artifact))


# --------------------------------------------------------------------------------------------------------------
# Model artifacts


@transaction.atomic
def model_artifact_register(
    *,
    name: str,
    location: str,
    kind: str = ArtifactKind.POLICY,
    base: ModelArtifact | None = None,
    is_adapter: bool = False,
) -> ModelArtifact:
    """Register a model Loupe did not train (a hub name or a folder) so runs, sampling and benchmarks can use it."""
    if not name.strip() or not location.strip():
        raise ApplicationError("A model needs a name and a location (hub name or folder).")
    model_name_check(name=name.strip())  # a name may become a folder name (merging): one safe path segment
    if ModelArtifact.objects.filter(name=name.strip()).exists():
        raise ApplicationError(f"A model named {name.strip()!r} already exists.", {"field": "name"})
    artifact = ModelArtifact(
        name=name.strip(),
        location=location.strip(),
        kind=kind,
        base=base,
        base_name=base.location if base else "",
        is_adapter=is_adapter,
    )
    artifact.full_clean()
    artifact.save()
    return artifact


# A model's name is also the name of its folder under MODELS_DIR (a merged adapter's output): one path
# segment of letters, digits, '.', '_' and '-', starting with a letter or digit (so never '..' or '/x').
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
MODEL_NAME_MAX_LENGTH = ModelArtifact._meta.get_field("name").max_length
MODEL_NAME_HELP = (
    f"Letters, digits, '.', '_' and '-', starting with a letter or digit; at most {MODEL_NAME_MAX_LENGTH} characters."
)


def model_name_check(*, name: str, field: str = "name") -> str:
    """`name` if it can name a model (and its folder), else ApplicationError naming `field`."""
    if not isinstance(name, str) or not re.fullmatch(MODEL_NAME_PATTERN, name):
        raise ApplicationError(f"{name!r:.80} cannot name a model: {MODEL_NAME_HELP}", {"field": field})
    if len(name) > MODEL_NAME_MAX_LENGTH:
        raise ApplicationError(
            f"A model name has at most {MODEL_NAME_MAX_LENGTH} characters, not {len(name)}.", {"field": field}
        )
    return name


def model_name_from_reference(*, reference: str) -> str:
    """A valid model name for a folder or hub name (`/data/models/tiny-vlm` → `tiny-vlm`,
    `org/model` → `org-model`), unique among registered models."""
    cleaned = reference.strip().rstrip("/")
    last = cleaned.rsplit("/", 1)[-1] if cleaned.startswith((".", "/", "~")) else cleaned.replace("/", "-")
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", last).lstrip("._-")[: MODEL_NAME_MAX_LENGTH - 12] or "model"
    name, number = base, 1
    while ModelArtifact.objects.filter(name=name).exists():
        number += 1
        name = f"{base}-{number}"
    return name


def model_dir(*, name: str) -> Path:
    """The folder of model `name` under MODELS_DIR, refused (ApplicationError) if it would resolve elsewhere."""
    model_name_check(name=name)
    root = Path(settings.MODELS_DIR).resolve()
    path = (root / name).resolve()
    if path.parent != root:  # a symlink planted in the models folder cannot redirect a write either
        raise ApplicationError(f"The model folder for {name!r} would lie outside {root}.", {"field": "name"})
    return path


def _merged_name(artifact: ModelArtifact) -> str:
    return f"{artifact.name}-merged"


def model_artifact_merge(*, artifact: ModelArtifact) -> str:
    """Queue the merge of a LoRA adapter artifact into a full model; returns the name the merged model will get."""
    if not artifact.is_adapter:
        raise ApplicationError(f"{artifact.name} is a full model already; only LoRA adapters are merged.")
    model_dir(name=_merged_name(artifact))  # refused now, not in the worker, when the name cannot be a folder
    if ModelArtifact.objects.filter(name=_merged_name(artifact)).exists():
        raise ApplicationError(f"{artifact.name} has been merged already, as {_merged_name(artifact)}.")
    from training.tasks import model_artifact_merge_task

    transaction.on_commit(lambda: model_artifact_merge_task.delay(artifact.pk))
    return _merged_name(artifact)


def model_artifact_merge_execute(*, artifact_id: int) -> ModelArtifact:
    """Merge an adapter artifact into its base and register the merged full model (in a worker or a CLI)."""
    from training.methods.lora import merge_adapter

    artifact = ModelArtifact.objects.get(pk=artifact_id)
    if not artifact.is_adapter:
        raise ApplicationError(f"{artifact.name} is not a LoRA adapter.")
    out_dir = model_dir(name=_merged_name(artifact))
    merge_adapter(adapter_dir=Path(artifact.location), output_dir=out_dir, base_model=artifact.base_name or None)
    merged, _ = ModelArtifact.objects.update_or_create(
        name=_merged_name(artifact),
        defaults={
            "location": str(out_dir),
            "kind": artifact.kind,
            "base": artifact.base,
            "base_name": artifact.base_name,
            "snapshot": artifact.snapshot,
            "produced_by": artifact.produced_by,
            "is_adapter": False,
        },
    )
    return merged
