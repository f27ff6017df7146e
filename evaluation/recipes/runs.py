"""Writes for `RecipeRun` (the admin's *Recipe runs*): start (checked, queued on the `training` queue), execute
(in the worker: the recipe run inline, its progress appended to the run's log, a heartbeat stamped while it
works) and reap (runs whose worker died, found by their stale heartbeat)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import JobStatus
from evaluation.models import RecipeRun
from evaluation.recipes import RecipeFailed, recipe_check, recipe_config_build, recipe_run
from loupe.db import Heartbeat, log_appended
from loupe.errors import ApplicationError
from loupe.failures import FAILURE_PREFIX, failure_cause, failure_log


@transaction.atomic
def recipe_run_start(*, name: str, size: str, seed: int, created_by: AbstractBaseUser | None) -> RecipeRun:
    """Check the settings and queue a recipe run."""
    recipe_check(name=name)
    recipe_config_build(size=size, seed=seed)
    run = RecipeRun(name=name, size=size, seed=seed, created_by=created_by)
    run.full_clean()
    run.save()
    from evaluation.tasks import recipe_run_execute_task

    transaction.on_commit(lambda: recipe_run_execute_task.delay(run.pk))
    return run


def recipe_run_execute(*, recipe_run_id: int) -> None:
    """Run a queued recipe run to its end. Idempotent: only the delivery that claims the queued row runs it."""
    claimed = RecipeRun.objects.filter(pk=recipe_run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    run = RecipeRun.objects.select_related("created_by").get(pk=recipe_run_id)
    heartbeat = Heartbeat(RecipeRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING))
    heartbeat.start()

    def progress(line: str) -> None:
        RecipeRun.objects.filter(pk=run.pk).update(log=log_appended(line.rstrip("\n") + "\n"))

    owner = run.created_by.username if run.created_by_id else ""
    try:
        config = recipe_config_build(size=run.size, seed=run.seed, owner=owner)
        path, _ = recipe_run(name=run.name, config=config, progress=progress)
    except (RecipeFailed, ApplicationError) as error:
        message = error.message if isinstance(error, ApplicationError) else str(error)
        RecipeRun.objects.filter(pk=run.pk).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=message,
            log=log_appended(f"{FAILURE_PREFIX}{message}\n"),
        )
        return
    except BaseException as error:
        RecipeRun.objects.filter(pk=run.pk).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=failure_cause(error),
            log=log_appended(failure_log(error)),  # the traceback for staff
        )
        raise
    finally:
        heartbeat.stop()
    RecipeRun.objects.filter(pk=run.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now(), report_path=str(path)
    )


def recipe_runs_reap_dead() -> int:
    """Mark running recipe runs whose heartbeat stopped as failed (their worker died); returns how many.

    On the embedded broker a killed worker's task is never delivered again: without this a run would stay
    `running` for ever. Called when a worker starts and whenever the admin lists or shows recipe runs."""
    cutoff = timezone.now() - timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS)
    cause = "the worker stopped (no heartbeat); run the recipe again"
    # A run started before runs had a heartbeat has none: its start is the last sign of life.
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    return RecipeRun.objects.filter(silent, status=JobStatus.RUNNING).update(
        status=JobStatus.FAILED,
        finished_at=timezone.now(),
        error=cause[:1].upper() + cause[1:] + ".",
        log=log_appended(f"[loupe] no heartbeat: the worker died\n{FAILURE_PREFIX}{cause}\n"),
    )
