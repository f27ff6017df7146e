"""Celery tasks of the evaluation app: thin wrappers that take ids and call services (queue `benchmark`)."""

from celery import shared_task
from celery.signals import worker_ready


@shared_task(name="benchmark.run_execute", ignore_result=True)
def benchmark_run_execute_task(run_id: int) -> None:
    from evaluation.services import benchmark_run_execute

    benchmark_run_execute(run_id=run_id)


@worker_ready.connect
def _reap_benchmark_runs_of_dead_workers(**_: object) -> None:
    from evaluation.services import benchmark_runs_reap_dead

    benchmark_runs_reap_dead()


@worker_ready.connect
def _reap_recipe_runs_of_dead_workers(**_: object) -> None:
    from evaluation.recipes.runs import recipe_runs_reap_dead

    recipe_runs_reap_dead()


# Named under `training.` so it is routed to the `training` queue: a recipe trains models (and runs benchmarks).
@shared_task(name="training.recipe_run_execute", ignore_result=True)
def recipe_run_execute_task(recipe_run_id: int) -> None:
    from evaluation.recipes.runs import recipe_run_execute

    recipe_run_execute(recipe_run_id=recipe_run_id)
