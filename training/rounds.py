"""RLAIF-V rounds (design.md §8, issue 12 item 7): generate → label → snapshot → DPO, K times, each round's
model sampling the next round.

A `RoundsRun` is started with `rounds_run_start` and run by `rounds_run_execute` in one Celery task on the
`training` queue. Every step runs inline in that task, calling the other services' execute functions
directly (`labeler_job_execute`, `training_run_execute`) rather than queueing them and waiting: a task must
never wait on other tasks (a single worker, the `--pool solo` one `platform/demo.sh` starts, would wait on
itself forever), and the steps are sequential anyway. The labeler job and the training run are still the
ordinary rows with their own progress, log, cancel and resume; the tasks their start functions queue find
them finished and do nothing (both claim their row atomically, so a second delivery is a no-op). Should
another worker take one first, the round waits on its row.

Per round (`Round`), each step is done once and recorded, so a failed or cancelled run resumes at the step
that stopped it:

1. **generate**: the round's model (round 1: the base; then the previous round's model) samples
   `samples_per_prompt` answers per source prompt with one set of decoding settings (RLAIF-V's deconfounded
   candidates, `annotation.labeler.pipeline.candidates_sample`). Each source item gets a copy in the project,
   `rounds-<run>-r<round>-<source item id>`, tagged in `meta[ROUND_META_KEY]` with the run, round, model and
   decoding settings; the answers are its responses (`model_name` is the model). Chunks are stored in one
   transaction each and sampled under a seed of their own, so a resumed generate skips stored items and
   samples the rest as the first attempt would have.
2. **label**: a `LabelerJob` over the round's items (`labeler_job_start` / `labeler_job_execute`); a resume
   resumes the job, which relabels nothing.
3. **snapshot**: the AI pairs of this round's labeler verdicts (`SnapshotFilter` with `sources=("ai",)`, the
   labeler as annotator and `date_from` the moment labelling began, so earlier rounds' verdicts on the same
   project stay out).
4. **train**: a DPO (or DDPO) `TrainingRun` from the round's model on that snapshot; its `_finish` registers the
   new `ModelArtifact` with `base` the round's model, which is the lineage (round 1's model → the base).

A step that fails stops the run (`failed`, the cause in its log); a round whose model wrote no answer, or whose
verdicts make no pair, fails with that said.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Avg
from django.utils import timezone

from annotation.models import AIFeedback, Item, JobStatus, LabelerJob, Project, ProjectKind, Response
from annotation.services.labeler import (
    labeler_base_url_check,
    labeler_config_check,
    labeler_job_cancel,
    labeler_job_execute,
    labeler_job_resume,
    labeler_job_start,
    labeler_jobs_reap_dead,
)
from annotation.services.snapshots import AI_ANNOTATOR_PREFIX, SnapshotFilter, snapshot_create
from loupe.db import Heartbeat, log_appended
from loupe.errors import ApplicationError
from training.models import (
    ArtifactKind,
    ModelArtifact,
    Round,
    RoundsRun,
    RoundsStep,
    RunMetric,
    TrainingRun,
)
from training.services import (
    base_model_check,
    method_config_build,
    model_artifact_register,
    model_name_from_reference,
    training_run_cancel,
    training_run_create,
    training_run_execute,
    training_run_resume,
    training_runs_reap_dead,
)

ROUND_META_KEY = "loupe_round"
ROUND_METHODS = ("dpo", "ddpo")
LABELER_BACKENDS = ("local", "openai")
# How often a round looks at a labeler job or training run that another worker holds.
POLL_SECONDS = 1.0


@dataclass
class RoundsConfig:
    """Settings of a rounds run (each field's help text is what the API and forms show)."""

    labeler_model: str = field(
        default="", metadata={"help": "The AI labeler: a folder or hub name (local) or the served model's name."}
    )
    labeler_backend: str = field(default="local", metadata={"help": "'local' (transformers) or 'openai' (a server)."})
    labeler_base_url: str = field(default="", metadata={"help": "The labeler server's URL (openai backend only)."})
    prompt_version: str = field(default="v1", metadata={"help": "The labeler's prompt version."})
    labeler_config: dict = field(
        default_factory=dict, metadata={"help": "LabelerConfig fields for the labeler job, e.g. {'batch_size': 8}."}
    )
    samples_per_prompt: int = field(
        default=4, metadata={"help": "Answers the round's model samples per prompt (RLAIF-V: several, one setting)."}
    )
    prompts_per_round: int = field(
        default=0, metadata={"help": "Source prompts each round samples, drawn per round by the seed; 0: all."}
    )
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer sampled."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (positive)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass; 1 samples from everything."})
    generate_batch_size: int = field(
        default=16, metadata={"help": "Prompts sampled together and stored in one transaction."}
    )
    method: str = field(default="dpo", metadata={"help": "How each round trains: 'dpo' or 'ddpo'."})
    train_config: dict = field(
        default_factory=dict, metadata={"help": "The method's settings, e.g. {'max_steps': 50, 'beta': 0.1}."}
    )
    test_fraction: float = field(
        default=0.0, metadata={"help": "Share of each round's items held out of training (RLAIF-V holds none)."}
    )
    balance_ai_lengths: bool = field(
        default=True, metadata={"help": "RLAIF-V's length balancing of each round's AI pairs."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the prompts drawn, the sampling and the split."})

    def __post_init__(self) -> None:
        for name in ("samples_per_prompt", "max_new_tokens", "generate_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.samples_per_prompt < 2:
            raise ValueError("samples_per_prompt must be at least 2: pairs are made between answers to one prompt")
        if self.prompts_per_round < 0:
            raise ValueError("prompts_per_round must be 0 (all) or more")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive: greedy answers to one prompt would all be equal")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not 0 <= self.test_fraction < 1:
            raise ValueError("test_fraction must be at least 0 and below 1")


class RoundStepFailed(Exception):
    """A step of a round could not finish; the message says why and is what the run's log records."""


class RoundsCancelled(Exception):
    """Raised between steps when the run's cancellation was asked for."""


# ---------------------------------------------------------------------------------------------------
# Checking and starting


def rounds_config_check(*, config: dict[str, Any]) -> RoundsConfig:
    """The run's `RoundsConfig`, every part checked (labeler, backend, server, training method and its
    settings), or ApplicationError naming the field at fault."""
    if not isinstance(config, dict):
        raise ApplicationError("The config must be a JSON object of setting names and values.", {"field": "config"})
    known = {f.name for f in dataclasses.fields(RoundsConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ApplicationError(
            f"Unknown rounds setting(s): {', '.join(unknown)}.", {"field": unknown[0], "known": sorted(known)}
        )
    try:
        built = RoundsConfig(**config)
    except (TypeError, ValueError) as error:
        raise ApplicationError(f"Invalid rounds settings: {error}", {"field": "config"}) from error
    if not built.labeler_model.strip():
        raise ApplicationError("The rounds need an AI labeler model (labeler_model).", {"field": "labeler_model"})
    if built.labeler_backend not in LABELER_BACKENDS:
        raise ApplicationError(
            f"labeler_backend must be one of {', '.join(LABELER_BACKENDS)}.", {"field": "labeler_backend"}
        )
    if built.labeler_backend == "openai":
        built.labeler_base_url = labeler_base_url_check(base_url=built.labeler_base_url)
    elif built.labeler_base_url:
        raise ApplicationError("A local labeler takes no server URL.", {"field": "labeler_base_url"})
    if not isinstance(built.labeler_config, dict):
        raise ApplicationError("labeler_config must be a JSON object.", {"field": "labeler_config"})
    labeler_config_check(prompt_version=built.prompt_version, config=built.labeler_config)
    if built.method not in ROUND_METHODS:
        raise ApplicationError(f"method must be one of {', '.join(ROUND_METHODS)}.", {"field": "method"})
    if not isinstance(built.train_config, dict):
        raise ApplicationError("train_config must be a JSON object.", {"field": "train_config"})
    train = method_config_build(method=built.method, config=built.train_config)
    if train.use_lora and not train.merge_lora:
        raise ApplicationError(
            "Each round's model samples the next round, so it must be a full model: keep merge_lora on.",
            {"field": "train_config"},
        )
    return built


def rounds_base_find(*, reference: str) -> ModelArtifact | None:
    """The registered model `reference` names (its name, id or location), checked to be a full policy model;
    None when none is registered yet (`rounds_base_resolve` registers it). Reads only."""
    reference = reference.strip()
    if not reference:
        raise ApplicationError("A base model (name, id or folder) is required.", {"field": "base_model"})
    artifact = ModelArtifact.objects.filter(name=reference).first()
    if artifact is None and reference.isdigit():
        artifact = ModelArtifact.objects.filter(pk=int(reference)).first()
    if artifact is None:
        artifact = (
            ModelArtifact.objects.filter(location=reference, kind=ArtifactKind.POLICY, is_adapter=False)
            .order_by("id")
            .first()
        )
    if artifact is not None and (artifact.kind != ArtifactKind.POLICY or artifact.is_adapter):
        raise ApplicationError(
            f"{artifact.name} is not a full policy model (a reward model or an unmerged adapter cannot sample).",
            {"field": "base_model"},
        )
    if artifact is None:
        base_model_check(base_model=reference)  # a local model folder, or refused as a training run's base is
    return artifact


def rounds_base_resolve(*, reference: str) -> ModelArtifact:
    """The model round 1 samples with: a registered model's name or id, or a local model folder, which is
    registered (named after the folder) if no policy model has it as its location yet, so the lineage starts
    there."""
    artifact = rounds_base_find(reference=reference)
    if artifact is None:
        artifact = model_artifact_register(
            name=model_name_from_reference(reference=reference), location=reference.strip()
        )
    return artifact


def rounds_project_check(*, project: Project) -> None:
    """ApplicationError unless rounds can run on `project`: items with prompts, several answers per item."""
    if project.kind == ProjectKind.RATING:
        raise ApplicationError(
            "Rounds store several answers per prompt on one item; a rating project judges single captions.",
            {"field": "project"},
        )
    if not _source_items(project).exists():
        raise ApplicationError(f"Project {project.slug} has no items whose prompts to sample.", {"field": "project"})


def _source_items(project: Project):  # noqa: ANN202 — a QuerySet of Item
    """The project's own items (not copies a round made): the prompts every round samples from."""
    return Item.objects.filter(project=project).exclude(meta__has_key=ROUND_META_KEY).order_by("id")


@transaction.atomic
def rounds_run_start(
    *,
    project: Project,
    base_model: str,
    n_rounds: int,
    config: dict[str, Any] | None,
    created_by: AbstractBaseUser | None,
) -> RoundsRun:
    """Check the settings and queue a rounds run on the `training` queue. `base_model` is a registered model's
    name or id, or a folder or hub name (registered only once every check has passed)."""
    built = rounds_config_check(config=dict(config or {}))
    if not isinstance(n_rounds, int) or n_rounds < 1:
        raise ApplicationError("The number of rounds must be at least 1.", {"field": "n_rounds"})
    rounds_project_check(project=project)
    base_artifact = rounds_base_resolve(reference=base_model)
    run = RoundsRun(
        project=project,
        base_artifact=base_artifact,
        n_rounds=n_rounds,
        config=dataclasses.asdict(built),
        created_by=created_by,
    )
    run.full_clean()
    run.save()
    _enqueue(run)
    return run


def _enqueue(run: RoundsRun) -> None:
    from training.tasks import rounds_run_execute_task

    transaction.on_commit(lambda: rounds_run_execute_task.delay(run.pk))


@transaction.atomic
def rounds_run_cancel(*, rounds_run: RoundsRun) -> RoundsRun:
    """A queued run ends at once; a running one stops after its current step, which is asked to stop too
    (the labeler keeps what it stored, training its last checkpoint), and resumes from there."""
    run = RoundsRun.objects.select_for_update().get(pk=rounds_run.pk)
    if run.status == JobStatus.QUEUED:
        run.status, run.finished_at = JobStatus.CANCELLED, timezone.now()
        run.save(update_fields=["status", "finished_at"])
    elif run.status == JobStatus.RUNNING:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
        current = Round.objects.filter(rounds_run=run, number=run.current_round).first()
        if current is not None:
            job = current.labeler_job
            if job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                labeler_job_cancel(job=job)
            training = current.training_run
            if training is not None and training.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                training_run_cancel(run=training)
    else:
        raise ApplicationError(f"A {run.status} rounds run cannot be cancelled.")
    run.refresh_from_db()
    return run


@transaction.atomic
def rounds_run_resume(*, rounds_run: RoundsRun) -> RoundsRun:
    """Queue a failed or cancelled run again; it continues at the step that stopped it."""
    run = RoundsRun.objects.select_for_update().get(pk=rounds_run.pk)
    if run.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ApplicationError(f"Only failed or cancelled rounds runs can be resumed; this one is {run.status}.")
    run.status, run.cancel_requested, run.finished_at = JobStatus.QUEUED, False, None
    run.save(update_fields=["status", "cancel_requested", "finished_at"])
    _log(run.pk, f"[loupe] resume requested (round {run.current_round}, {run.step or 'start'})\n")
    _enqueue(run)
    run.refresh_from_db()
    return run


def rounds_runs_reap_dead() -> int:
    """Mark running rounds runs whose worker stopped beating as failed, so they can be resumed."""
    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    return RoundsRun.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
        status=JobStatus.FAILED,
        finished_at=timezone.now(),
        log=log_appended("[loupe] no heartbeat: the worker died; resume continues at the step it was on\n"),
    )


# ---------------------------------------------------------------------------------------------------
# Running


def _log(run_id: int, text: str) -> None:
    RoundsRun.objects.filter(pk=run_id).update(log=log_appended(text))


def rounds_run_execute(*, rounds_run_id: int) -> None:
    """Run a queued rounds run to its end in this process (a worker on the `training` queue). Safe to deliver
    twice: only the delivery that claims the queued row runs it."""
    claimed = RoundsRun.objects.filter(pk=rounds_run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    run = RoundsRun.objects.select_related("project", "base_artifact").get(pk=rounds_run_id)
    heartbeat = Heartbeat(RoundsRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING))
    heartbeat.start()
    try:
        config = rounds_config_check(config=run.config)
        for number in range(1, run.n_rounds + 1):
            _round_run(run, number=number, config=config)
    except RoundsCancelled:
        heartbeat.stop()
        RoundsRun.objects.filter(pk=run.pk).update(status=JobStatus.CANCELLED, finished_at=timezone.now())
        _log(run.pk, "[loupe] cancelled; every finished step is kept and resume continues from here\n")
        return
    except (RoundStepFailed, ApplicationError) as error:
        heartbeat.stop()
        message = error.message if isinstance(error, ApplicationError) else str(error)
        RoundsRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, finished_at=timezone.now())
        _log(run.pk, f"[loupe] round {_current(run.pk)} failed at {_step(run.pk)}: {message}\n")
        return
    except BaseException:
        heartbeat.stop()
        RoundsRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, finished_at=timezone.now())
        _log(run.pk, f"[loupe] round {_current(run.pk)} failed at {_step(run.pk)}:\n{traceback.format_exc()}")
        raise
    heartbeat.stop()
    RoundsRun.objects.filter(pk=run.pk).update(
        status=JobStatus.SUCCEEDED, step=RoundsStep.DONE, finished_at=timezone.now()
    )
    last = Round.objects.get(rounds_run=run, number=run.n_rounds)
    _log(run.pk, f"[loupe] succeeded: {run.n_rounds} rounds; the last model is {last.model.name}\n")


def _current(run_id: int) -> int:
    return RoundsRun.objects.values_list("current_round", flat=True).get(pk=run_id)


def _step(run_id: int) -> str:
    return RoundsRun.objects.values_list("step", flat=True).get(pk=run_id) or "start"


def _enter(run: RoundsRun, *, number: int, step: str) -> None:
    """Record where the run is, after checking it was not asked to stop."""
    if RoundsRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
        raise RoundsCancelled
    RoundsRun.objects.filter(pk=run.pk).update(current_round=number, step=step, heartbeat_at=timezone.now())


def _round_run(run: RoundsRun, *, number: int, config: RoundsConfig) -> None:
    """Do the steps of round `number` that are not done yet."""
    round_ = Round.objects.filter(rounds_run=run, number=number).first()
    if round_ is not None and round_.model_id is not None:
        return  # finished by an earlier attempt
    if round_ is None:
        # Round 1 samples with the base; each later round with the model the round before it trained.
        policy = run.base_artifact if number == 1 else Round.objects.get(rounds_run=run, number=number - 1).model
        round_ = Round(rounds_run=run, number=number, policy=policy)
        round_.full_clean()
        round_.save()
        _log(run.pk, f"[loupe] round {number} of {run.n_rounds}: sampling with {policy.name}\n")
    if round_.generated_at is None:
        _enter(run, number=number, step=RoundsStep.GENERATE)
        _generate(run, round_, config=config)
    _enter(run, number=number, step=RoundsStep.LABEL)
    _label(run, round_, config=config)
    if round_.snapshot_id is None:
        _enter(run, number=number, step=RoundsStep.SNAPSHOT)
        _freeze(run, round_, config=config)
    _enter(run, number=number, step=RoundsStep.TRAIN)
    _train(run, round_, config=config)


# --- generate


def _policy_open(location: str) -> Any:
    """The round's model as a sampling backend, on the GPU when there is one (imported here: torch)."""
    import torch

    from annotation.labeler.backends.local import LocalBackend

    return LocalBackend.from_path(location, device="cuda" if torch.cuda.is_available() else None)


def _policy_close(backend: Any) -> None:
    """Free the sampling model before the labeler and the trainer load theirs."""
    import torch

    del backend.model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _round_external_id(run: RoundsRun, number: int, source: Item) -> str:
    return f"rounds-{run.pk}-r{number}-{source.pk}"


def _round_sources(run: RoundsRun, number: int, config: RoundsConfig) -> list[Item]:
    sources = list(_source_items(run.project))
    if config.prompts_per_round and config.prompts_per_round < len(sources):
        drawn = random.Random(f"{config.seed}:{number}").sample(range(len(sources)), config.prompts_per_round)
        sources = [sources[k] for k in sorted(drawn)]
    return sources


def _image_of(item: Item) -> Any:
    if not item.image:
        return None
    from PIL import Image

    try:
        with Image.open(Path(settings.MEDIA_ROOT) / item.image) as opened:
            return opened.convert("RGB")
    except OSError as error:
        raise RoundStepFailed(f"the image of item {item.external_id} ({item.image}) cannot be read: {error}") from error


def _generate(run: RoundsRun, round_: Round, *, config: RoundsConfig) -> None:
    """Sample the round's answers onto copies of the source items, a chunk per transaction (see the module
    docstring); items an earlier attempt stored are kept and not sampled again."""
    from transformers import set_seed

    from annotation.labeler.pipeline import candidates_sample

    number, policy = round_.number, round_.policy
    sources = _round_sources(run, number, config)
    ids = {_round_external_id(run, number, s): s for s in sources}
    stored = set(Item.objects.filter(project=run.project, external_id__in=ids).values_list("external_id", flat=True))
    decoding = {
        "n": config.samples_per_prompt,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_new_tokens": config.max_new_tokens,
    }
    backend = None
    written = 0
    for start in range(0, len(sources), config.generate_batch_size):
        chunk = [
            s
            for s in sources[start : start + config.generate_batch_size]
            if _round_external_id(run, number, s) not in stored
        ]
        if not chunk:
            continue
        if RoundsRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
            raise RoundsCancelled  # the chunks stored so far are kept; a resume samples the rest
        if backend is None:
            try:
                backend = _policy_open(policy.location)
            except OSError as error:
                raise RoundStepFailed(
                    f"the model {policy.name} cannot be loaded from {policy.location}: {error}"
                ) from error
        images = [_image_of(s) for s in chunk]
        # A seed per round and chunk: an attempt that resumes here samples what the first one would have, and
        # the same settings on the same project sample the same answers.
        set_seed(config.seed * 1_000_003 + number * 10_007 + start)
        answers = candidates_sample(
            backend=backend,
            prompts=[s.prompt for s in chunk],
            images=images if any(i is not None for i in images) else None,
            n=config.samples_per_prompt,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
        )
        with transaction.atomic():
            for source, texts in zip(chunk, answers, strict=True):
                tag = {
                    "rounds_run": run.pk,
                    "round": number,
                    "source_item": source.external_id,
                    "model": policy.name,
                    "decoding": decoding,
                }
                item = Item.objects.create(
                    project=run.project,
                    external_id=_round_external_id(run, number, source),
                    prompt=source.prompt,
                    image=source.image,
                    meta={ROUND_META_KEY: tag},
                )
                # An empty answer says nothing to judge (and would win every pair by having no claims).
                kept = [text for text in texts if text.strip()]
                Response.objects.bulk_create(
                    Response(
                        item=item,
                        position=position,
                        text=text,
                        model_name=policy.name,
                        meta={ROUND_META_KEY: {"rounds_run": run.pk, "round": number, "decoding": decoding}},
                    )
                    for position, text in enumerate(kept)
                )
                written += len(kept)
        RoundsRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
    if backend is not None:
        _policy_close(backend)
    item_ids = list(
        Item.objects.filter(project=run.project, external_id__in=ids).order_by("id").values_list("id", flat=True)
    )
    answers_total = Response.objects.filter(item_id__in=item_ids).count()
    if not answers_total:
        raise RoundStepFailed(f"{policy.name} wrote no answer (every sample was empty); nothing to label")
    round_.item_ids = item_ids
    round_.generated_at = timezone.now()
    round_.figures = {**round_.figures, "prompts": len(item_ids), "answers": answers_total}
    round_.save(update_fields=["item_ids", "generated_at", "figures"])
    _log(run.pk, f"[loupe] round {number}: {answers_total} answers to {len(item_ids)} prompts stored\n")


# --- label


def _wait_while_held(read: Callable[[], str], *, reap: Callable[[], int]) -> str:
    """Wait while another worker holds a job (queued or running); returns its final status. `reap` marks a job
    whose worker died as failed, so this never waits on a dead one for longer than the heartbeat timeout."""
    while (status := read()) in (JobStatus.QUEUED, JobStatus.RUNNING):
        reap()
        time.sleep(POLL_SECONDS)
    return status


def _label(run: RoundsRun, round_: Round, *, config: RoundsConfig) -> None:
    if round_.labeler_job_id is None:
        round_.labelled_from = timezone.now()
        round_.labeler_job = labeler_job_start(
            project=run.project,
            backend=config.labeler_backend,
            model=config.labeler_model,
            base_url=config.labeler_base_url,
            prompt_version=config.prompt_version,
            config=config.labeler_config,
            items=list(Item.objects.filter(pk__in=round_.item_ids)),
            created_by=run.created_by,
        )
        round_.save(update_fields=["labelled_from", "labeler_job"])
    job = LabelerJob.objects.get(pk=round_.labeler_job_id)
    if job.status == JobStatus.SUCCEEDED:
        return
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        job = labeler_job_resume(job=job)
    # The job's row records a failure (status and log), read below; another delivery of its task that took it
    # first makes this a no-op.
    with contextlib.suppress(Exception):
        labeler_job_execute(job_id=job.pk)
    status = _wait_while_held(
        lambda: LabelerJob.objects.values_list("status", flat=True).get(pk=job.pk), reap=labeler_jobs_reap_dead
    )
    if status == JobStatus.CANCELLED and RoundsRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
        raise RoundsCancelled
    if status != JobStatus.SUCCEEDED:
        log = LabelerJob.objects.values_list("log", flat=True).get(pk=job.pk)
        raise RoundStepFailed(f"labeler job {job.pk} ended {status}:\n{log[-2000:]}")
    feedback = AIFeedback.objects.filter(
        response__item_id__in=round_.item_ids, labeler_model=job.model
    )  # the backend's name
    rejected = sum(sum(1 for p in f.p_yes if p <= 0.5) for f in feedback)  # RLAIF-V: accepted iff P(yes) > P(no)
    claims = sum(len(f.p_yes) for f in feedback)
    round_.figures = {
        **round_.figures,
        "labelled": feedback.count(),
        "mean_score": feedback.aggregate(mean=Avg("score"))["mean"],
        "claims": claims,
        "rejected_claim_rate": rejected / claims if claims else None,
    }
    round_.save(update_fields=["figures"])


# --- snapshot


def _freeze(run: RoundsRun, round_: Round, *, config: RoundsConfig) -> None:
    job = LabelerJob.objects.get(pk=round_.labeler_job_id)
    snapshot_filter = SnapshotFilter(
        kind="pairs",
        sources=("ai",),
        annotators=(f"{AI_ANNOTATOR_PREFIX}{job.model}",),  # verdicts record the model given
        date_from=round_.labelled_from.isoformat(),
        test_fraction=config.test_fraction,
        seed=config.seed,
        balance_ai_lengths=config.balance_ai_lengths,
    )
    try:
        snapshot = snapshot_create(project=run.project, created_by=run.created_by, snapshot_filter=snapshot_filter)
    except ApplicationError as error:
        raise RoundStepFailed(
            f"the labeler's verdicts on this round's answers make no pair ({error.message}) — sample more answers "
            "per prompt, more prompts, or at a higher temperature"
        ) from error
    round_.snapshot = snapshot
    round_.figures = {
        **round_.figures,
        "ai_pairs": snapshot.n_rows,
        "train_pairs": snapshot.n_train,
        "test_pairs": snapshot.n_test,
    }
    round_.save(update_fields=["snapshot", "figures"])
    _log(run.pk, f"[loupe] round {round_.number}: snapshot {snapshot.pk} holds {snapshot.n_rows} AI pairs\n")


# --- train


def _train(run: RoundsRun, round_: Round, *, config: RoundsConfig) -> None:
    if round_.training_run_id is None:
        round_.training_run = training_run_create(
            method=config.method,
            snapshot=round_.snapshot,
            base_artifact=round_.policy,
            config=config.train_config,
            created_by=run.created_by,
        )
        round_.save(update_fields=["training_run"])
    training = TrainingRun.objects.get(pk=round_.training_run_id)
    if training.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        training = training_run_resume(run=training)
    if training.status == JobStatus.QUEUED:
        # The run's row records a failure (status and traceback), read below; another delivery of its task
        # that took it first makes this a no-op.
        with contextlib.suppress(Exception):
            training_run_execute(run_id=training.pk)
    status = _wait_while_held(
        lambda: TrainingRun.objects.values_list("status", flat=True).get(pk=training.pk),
        reap=training_runs_reap_dead,
    )
    if status == JobStatus.CANCELLED and RoundsRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
        raise RoundsCancelled
    if status != JobStatus.SUCCEEDED:
        log = TrainingRun.objects.values_list("log", flat=True).get(pk=training.pk)
        raise RoundStepFailed(f"training run {training.pk} ended {status}:\n{log[-2000:]}")
    model = ModelArtifact.objects.filter(produced_by_id=training.pk, kind=ArtifactKind.POLICY).order_by("-id").first()
    if model is None:
        raise RoundStepFailed(f"training run {training.pk} succeeded but registered no model")
    losses = [
        values["loss"]
        for values in RunMetric.objects.filter(run_id=training.pk).order_by("step").values_list("values", flat=True)
        if "loss" in values
    ]
    round_.model = model
    round_.figures = {**round_.figures, "steps": training.max_steps, "final_loss": losses[-1] if losses else None}
    round_.save(update_fields=["model", "figures"])
    _log(run.pk, f"[loupe] round {round_.number}: trained {model.name} from {round_.policy.name}\n")
