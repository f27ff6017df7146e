"""Celery tasks of the training app: thin wrappers that take ids and call services."""

from celery import shared_task
from celery.signals import worker_ready


@shared_task(name="training.run_execute", ignore_result=True)
def training_run_execute_task(run_id: int) -> None:
    from training.services import training_run_execute

    training_run_execute(run_id=run_id)


@shared_task(name="training.merge_adapter", ignore_result=True)
def model_artifact_merge_task(artifact_id: int) -> None:
    from training.services import model_artifact_merge_execute

    model_artifact_merge_execute(artifact_id=artifact_id)


@shared_task(name="training.rounds_run_execute", ignore_result=True)
def rounds_run_execute_task(rounds_run_id: int) -> None:
    from training.rounds import rounds_run_execute

    rounds_run_execute(rounds_run_id=rounds_run_id)


@worker_ready.connect
def _reap_runs_of_dead_workers(**_: object) -> None:
    # On the embedded broker a task whose worker was killed is never redelivered; a fresh worker is the
    # moment to mark such runs failed so they can be resumed.
    from training.rounds import rounds_runs_reap_dead
    from training.services import training_runs_reap_dead

    training_runs_reap_dead()
    rounds_runs_reap_dead()
