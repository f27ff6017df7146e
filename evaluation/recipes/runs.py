"""Writes for `RecipeRun` (the admin's *Recipe runs*): start (checked, queued on the `training` queue) and
execute (in the worker: the recipe run inline, its progress appended to the run's log)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import JobStatus
from evaluation.models import RecipeRun
from evaluation.recipes import RecipeFailed, recipe_check, recipe_config_build, recipe_run
from loupe.db import log_appended
from loupe.errors import ApplicationError


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
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return
    run = RecipeRun.objects.select_related("created_by").get(pk=recipe_run_id)

    def progress(line: str) -> None:
        RecipeRun.objects.filter(pk=run.pk).update(log=log_appended(line.rstrip("\n") + "\n"))

    owner = run.created_by.username if run.created_by_id else ""
    try:
        config = recipe_config_build(size=run.size, seed=run.seed, owner=owner)
        path, _ = recipe_run(name=run.name, config=config, progress=progress)
    except (RecipeFailed, ApplicationError) as error:
        message = error.message if isinstance(error, ApplicationError) else str(error)
        RecipeRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED, finished_at=timezone.now(), error=message)
        return
    except BaseException as error:
        RecipeRun.objects.filter(pk=run.pk).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), error=f"{type(error).__name__}: {error}"
        )
        raise
    RecipeRun.objects.filter(pk=run.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now(), report_path=str(path)
    )
