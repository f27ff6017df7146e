"""AI labeler jobs (design.md §8): start, run, cancel and resume a labeler over a project's responses.

`labeler_job_start` checks the settings (the labeler's own `LabelerConfig`, the backend kind, the server's
address) and queues the job on the `labeler` Celery queue once the transaction commits. The worker calls
`labeler_job_execute`, which claims the job (a second delivery does nothing), opens the backend and runs
`annotation.labeler.label_answers` over the responses, storing each verdict with `ai_feedback_record` as it
comes: a crash or a server that goes away keeps what was done. A resumed job skips every response that
already has feedback from the same labeler model and prompt version, so nothing is labelled twice.

Server addresses: http(s) only. Loopback (a `serve_model` beside the worker) and private LAN addresses (an
inference server on the lab's network is the common case) are allowed; link-local addresses (cloud metadata
endpoints live there), multicast, reserved and unspecified ones are refused, and so is a host that does not
resolve. Only a project's managers may start jobs. The API key comes from `LOUPE_LABELER_API_KEY` in the
worker's environment and is never stored on the job.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.labeler.backends import BACKEND_KINDS, LabelerBackendError
from annotation.labeler.config import LabelerConfig
from annotation.labeler.pipeline import AnswerToLabel, LabelledAnswer, LabelProgress, Rewrite
from annotation.models import AIFeedback, DatasetSnapshot, Item, JobStatus, LabelerJob, Project, Response
from annotation.services.preference_pairs import ai_feedback_record, ai_feedback_rewrite_record
from loupe.db import log_appended
from loupe.errors import ApplicationError
from loupe.failures import FAILURE_PREFIX, failure_log
from loupe.jsonchecks import dataclass_types_check

# LabelerConfig fields a job may set (prompt_version has its own column).
CONFIG_FIELDS = tuple(f.name for f in fields(LabelerConfig) if f.name != "prompt_version")


class LabelerJobCancelled(Exception):
    """Raised inside a running job when its cancellation was asked for; what was stored is kept."""


# ---------------------------------------------------------------------------------------------------
# Checking and starting


def labeler_config_check(*, prompt_version: str, config: dict[str, Any]) -> LabelerConfig:
    """The job's `LabelerConfig`, or ApplicationError naming the field that is wrong."""
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise ApplicationError(f"Unknown labeler settings: {', '.join(unknown)}.", {"fields": unknown})
    try:
        built = LabelerConfig(prompt_version=prompt_version, **config)
        dataclass_types_check(built)  # `batch_size: 2.5` or 1e300 would fail in the worker, not here
        return built
    except (TypeError, ValueError) as error:
        named = next((name for name in CONFIG_FIELDS if str(error).startswith(name)), None)
        raise ApplicationError(f"Invalid labeler settings: {error}", {"field": named or "config"}) from error


def labeler_base_url_check(*, base_url: str) -> str:
    """The server's base URL if it is http(s) and its host is public, loopback or private (see the module
    docstring); ApplicationError otherwise."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApplicationError(
            "The labeler server's URL must be http:// or https:// with a host.", {"field": "base_url"}
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)}
    except (OSError, ValueError) as error:
        raise ApplicationError(
            f"The labeler server's host {parts.hostname} does not resolve.", {"field": "base_url"}
        ) from error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
            raise ApplicationError(
                f"The labeler server's host {parts.hostname} is a link-local, multicast or reserved address.",
                {"field": "base_url"},
            )
    return base_url.rstrip("/")


@transaction.atomic
def labeler_job_start(
    *,
    project: Project,
    backend: str,
    model: str,
    base_url: str = "",
    prompt_version: str = "v1",
    config: dict[str, Any] | None = None,
    rewrite: bool = False,
    items: list[Item] | None = None,
    snapshot: DatasetSnapshot | None = None,
    created_by: AbstractBaseUser | None = None,
) -> LabelerJob:
    """Check the settings and queue a labeler job over the project's responses (or those of `items`, or of
    the items whose rows `snapshot` froze)."""
    if snapshot is not None:
        if items is not None:
            raise ApplicationError("Give either items or a snapshot, not both.", {"field": "snapshot"})
        items = _snapshot_items(project=project, snapshot=snapshot)
    config = dict(config or {})
    labeler_config_check(prompt_version=prompt_version, config=config)
    if backend not in BACKEND_KINDS:
        raise ApplicationError(f"The backend must be one of {', '.join(BACKEND_KINDS)}.", {"field": "backend"})
    if not model.strip():
        raise ApplicationError("The labeler needs a model.", {"field": "model"})
    if backend == "openai":
        base_url = labeler_base_url_check(base_url=base_url)
    elif base_url:
        raise ApplicationError("A local labeler takes no server URL.", {"field": "base_url"})
    item_ids = sorted({item.pk for item in items or ()})
    if any(item.project_id != project.pk for item in items or ()):
        raise ApplicationError("Every item must belong to the project.", {"field": "items"})
    job = LabelerJob(
        project=project,
        snapshot=snapshot,
        item_ids=item_ids,
        backend=backend,
        model=model.strip(),
        base_url=base_url,
        prompt_version=prompt_version,
        config=config,
        rewrite=rewrite,
        created_by=created_by,
        total=_responses(project_id=project.pk, item_ids=item_ids).count(),
    )
    job.full_clean()
    job.save()
    _enqueue(job)
    return job


def _snapshot_items(*, project: Project, snapshot: DatasetSnapshot) -> list[Item]:
    """The project's items the snapshot holds rows of (rows name their item by `item_key`, its external id)."""
    if snapshot.project_id != project.pk:
        raise ApplicationError("The snapshot belongs to another project.", {"field": "snapshot"})
    keys = set()
    with Path(snapshot.path).open(encoding="utf-8") as rows:
        for line in rows:
            if line.strip():
                keys.add(json.loads(line)["item_key"])
    items = list(Item.objects.filter(project=project, external_id__in=keys))
    if not items:
        raise ApplicationError("The snapshot holds no item of this project to label.", {"field": "snapshot"})
    return items


def _enqueue(job: LabelerJob) -> None:
    from annotation.tasks import labeler_job_execute_task

    transaction.on_commit(lambda: labeler_job_execute_task.delay(job.pk))


@transaction.atomic
def labeler_job_cancel(*, job: LabelerJob) -> LabelerJob:
    """Queued jobs end at once; running ones stop after their current chunk, keeping what they stored."""
    job = LabelerJob.objects.select_for_update().get(pk=job.pk)
    if job.status == JobStatus.QUEUED:
        job.status, job.finished_at = JobStatus.CANCELLED, timezone.now()
        job.save(update_fields=["status", "finished_at"])
        LabelerJob.objects.filter(pk=job.pk).update(log=log_appended("[loupe] cancelled before it started\n"))
    elif job.status == JobStatus.RUNNING:
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
    else:
        raise ApplicationError(f"A {job.status} labeler job cannot be cancelled.", {"job": job.pk})
    job.refresh_from_db()
    return job


@transaction.atomic
def labeler_job_resume(*, job: LabelerJob) -> LabelerJob:
    """Queue a failed or cancelled job again; it skips the responses it already labelled."""
    job = LabelerJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ApplicationError(f"Only failed or cancelled labeler jobs can be resumed; this one is {job.status}.")
    job.status, job.cancel_requested, job.finished_at = JobStatus.QUEUED, False, None
    job.save(update_fields=["status", "cancel_requested", "finished_at"])
    LabelerJob.objects.filter(pk=job.pk).update(log=log_appended("[loupe] resume requested\n"))
    _enqueue(job)
    job.refresh_from_db()
    return job


# ---------------------------------------------------------------------------------------------------
# Running


def _responses(*, project_id: int, item_ids: list[int]):
    responses = Response.objects.filter(project_id=project_id)
    if item_ids:
        responses = responses.filter(item_id__in=item_ids)
    return responses.order_by("item_id", "position")


def _answers(job: LabelerJob, by_key: dict[str, Response]) -> Iterator[AnswerToLabel]:
    """The job's responses as answers, each item's image opened once and only when its turn comes."""
    from PIL import Image

    image_item, image = None, None
    for response in _responses(project_id=job.project_id, item_ids=job.item_ids).select_related("item"):
        item = response.item
        if item.pk != image_item:
            image_item, image = item.pk, None
            if item.image:
                try:
                    with Image.open(Path(settings.MEDIA_ROOT) / item.image) as opened:
                        image = opened.convert("RGB")
                except OSError as error:
                    raise ApplicationError(
                        f"The image of item {item.external_id} ({item.image}) cannot be read: {error}",
                        {"item": item.external_id},
                    ) from error
        by_key[str(response.pk)] = response
        yield AnswerToLabel(
            key=str(response.pk),
            item_key=str(item.pk),
            prompt=item.prompt,
            answer=response.text,
            image=image,
            image_ref=item.image or None,
        )


def labeler_job_execute(*, job_id: int) -> None:
    """Run a queued labeler job in this process (a Celery worker). Safe to deliver twice."""
    claimed = LabelerJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now(), skipped=0, done=0
    )
    if not claimed:
        return  # Taken by another delivery, cancelled before it started, or finished.
    job = LabelerJob.objects.select_related("project").get(pk=job_id)
    where = f" at {job.base_url}" if job.base_url else ""
    LabelerJob.objects.filter(pk=job_id).update(
        log=log_appended(f"[loupe] labelling {job.project.slug} with {job.backend} model {job.model}{where}\n")
    )
    try:
        stored = _run(job)
    except LabelerJobCancelled:
        LabelerJob.objects.filter(pk=job_id).update(
            status=JobStatus.CANCELLED,
            finished_at=timezone.now(),
            log=log_appended("[loupe] cancelled; the verdicts stored so far are kept\n"),
        )
        return
    except LabelerBackendError as error:
        _fail(
            job_id,
            f"[loupe] the labeler failed: {error}\n[loupe] verdicts stored so far are kept; resume does the rest\n",
        )
        return
    except ApplicationError as error:
        _fail(job_id, f"{FAILURE_PREFIX}{error.message}\n")
        return
    except BaseException as error:
        _fail(job_id, failure_log(error))  # the traceback for staff, then the cause in one line
        raise
    LabelerJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        log=log_appended(f"[loupe] succeeded: {stored} answers labelled in this run\n"),
    )


def _run(job: LabelerJob) -> int:
    from annotation.labeler.backends import backend_open
    from annotation.labeler.pipeline import label_answers

    config = labeler_config_check(prompt_version=job.prompt_version, config=job.config)
    backend = backend_open(
        kind=job.backend,
        model=job.model,
        base_url=job.base_url,
        api_key=settings.LOUPE_LABELER_API_KEY,
        batch_size=config.batch_size,
    )
    done = {
        str(pk)
        for pk in AIFeedback.objects.filter(
            response__project_id=job.project_id, labeler_model=backend.name, prompt_version=job.prompt_version
        ).values_list("response_id", flat=True)
    }
    total = _responses(project_id=job.project_id, item_ids=job.item_ids).count()
    LabelerJob.objects.filter(pk=job.pk).update(total=total)
    by_key: dict[str, Response] = {}
    reported = LabelProgress()

    def progress(state: LabelProgress) -> None:
        LabelerJob.objects.filter(pk=job.pk).update(
            skipped=state.skipped,
            done=state.skipped + state.labelled,
            questions=F("questions") + (state.questions - reported.questions),
            heartbeat_at=timezone.now(),
        )
        reported.questions = state.questions
        if LabelerJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            raise LabelerJobCancelled

    stored = 0
    for labelled in label_answers(
        answers=_answers(job, by_key), backend=backend, config=config, done=done, progress=progress, total=total
    ):
        rewriting = job.rewrite and bool(labelled.rejected)
        # Written before the verdict is stored, so that the verdict, its rewrite and its count are committed
        # together: a worker killed in between leaves no verdict without its rewrite for a resume to skip.
        written = _rewrite_write(labelled, backend=backend, config=config) if rewriting else None
        with transaction.atomic():
            feedback = ai_feedback_record(
                response=by_key.pop(labelled.answer.key),
                labeler_model=backend.name,
                prompt_version=job.prompt_version,
                **labelled.feedback_fields(),
            )
            if rewriting:
                ai_feedback_rewrite_record(feedback=feedback, text=written.text if written else None)
            LabelerJob.objects.filter(pk=job.pk).update(
                labelled=F("labelled") + 1, done=F("done") + 1, heartbeat_at=timezone.now()
            )
        stored += 1
    return stored


def _rewrite_write(labelled: LabelledAnswer, *, backend: Any, config: LabelerConfig) -> Rewrite | None:
    """The HA-DPO rewrite of a labelled answer from its rejected claims (None when the model wrote nothing
    new), kept on its feedback row for the correction page to offer and turned into a rewrite pair."""
    from annotation.labeler.pipeline import rewrite_answer

    answer = labelled.answer
    return rewrite_answer(
        backend=backend,
        prompt=answer.prompt,
        answer=answer.answer,
        image=answer.image,
        rejected_claims=[c.claim.text for c in labelled.rejected],
        config=config,
    )


def _fail(job_id: int, text: str) -> None:
    LabelerJob.objects.filter(pk=job_id).update(
        status=JobStatus.FAILED, finished_at=timezone.now(), log=log_appended(text)
    )


def labeler_jobs_reap_dead() -> int:
    """Mark running jobs whose worker stopped beating as failed (their worker died); returns how many."""
    from datetime import timedelta

    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    return LabelerJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).update(
        status=JobStatus.FAILED,
        finished_at=timezone.now(),
        log=log_appended("[loupe] no heartbeat: the worker died; its verdicts are kept, resume does the rest\n"),
    )
