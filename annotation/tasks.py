"""Celery tasks of the annotation app: thin wrappers that take ids and call services."""

from celery import shared_task
from celery.signals import worker_ready


@shared_task(name="annotation.data_job_execute", ignore_result=True)
def data_job_execute_task(job_id: int) -> None:
    from annotation.services.jobs import data_job_execute

    data_job_execute(job_id=job_id)


@shared_task(name="annotation.preference_pairs_refresh_stale", ignore_result=True)
def preference_pairs_refresh_stale_task(project_id: int) -> None:
    # Idempotent: it derives whatever is stale when it runs (nothing, for a project deleted since), and a
    # snapshot derives whatever is still stale after it, so a lost or repeated run changes no result.
    from annotation.services.pair_refresh import preference_pairs_refresh_stale_batches

    preference_pairs_refresh_stale_batches(project_id=project_id)


@shared_task(name="labeler.job_execute", ignore_result=True)
def labeler_job_execute_task(job_id: int) -> None:
    from annotation.services.labeler import labeler_job_execute

    labeler_job_execute(job_id=job_id)


@worker_ready.connect
def _reap_labeler_jobs_of_dead_workers(**_: object) -> None:
    from annotation.services.labeler import labeler_jobs_reap_dead

    labeler_jobs_reap_dead()


@worker_ready.connect
def _reap_jobs_of_dead_workers(**_: object) -> None:
    # On the embedded broker a task whose worker was killed is never redelivered; a fresh worker is the
    # moment to mark such jobs failed so they can be started again.
    from annotation.services.jobs import data_jobs_reap_dead

    data_jobs_reap_dead()
