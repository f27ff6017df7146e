"""Issue 16, item 6: a job whose worker died is not left `running` for ever. The embedded broker never delivers a
dead worker's task again and a worker restarted within the heartbeat timeout sees a fresh heartbeat, so jobs are
reaped whenever they are read (as training runs are); a cancel of such a job ends it; a live job whose step
takes longer than the timeout keeps beating and is never taken for dead. Recipe runs beat and are reaped too."""

import datetime as dt
import json
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from annotation import services
from annotation.models import DataJob, JobStatus, LabelerJob
from annotation.services import jobs
from annotation.services.jobs import HEARTBEAT_FILE, job_dir
from evaluation.models import RecipeRun
from evaluation.recipes import runs


def _import_job(project, tmp_path):
    source = tmp_path / "items.jsonl"
    source.write_text(json.dumps({"external_id": "a", "prompt": "Q?", "responses": [{"text": "x"}, {"text": "y"}]}))
    return services.data_job_import_start(project=project, source=source, import_format="loupe-jsonl")


def _running_since(job, seconds_ago):
    """The job as a worker left it when it was killed `seconds_ago` (its last heartbeat)."""
    beat = timezone.now() - dt.timedelta(seconds=seconds_ago)
    DataJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, heartbeat_at=beat)
    return beat


@pytest.mark.django_db
def test_a_job_whose_worker_died_just_before_a_restart_fails_when_it_is_next_read(
    pairwise_project, researcher, api_client_for, tmp_path, settings, client
):
    """The restarted worker's reap finds the heartbeat fresh; once the timeout has passed, reading the job (its
    detail, the project's list or the datasets page) ends it as failed, with the cause in one line."""
    job = _import_job(pairwise_project, tmp_path)
    _running_since(job, 10)
    assert services.data_jobs_reap_dead() == 0  # the new worker starts 10 s after the old one died
    api = api_client_for(researcher)
    assert api.get(f"/api/v1/jobs/{job.pk}/").json()["status"] == "running"

    _running_since(job, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS + 5)  # the timeout has passed since
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "failed"
    assert "[loupe] failed: the worker stopped (no heartbeat); start the import again" in body["log"]
    assert not job_dir(job).exists(), "the upload of an import nobody runs is removed"

    for read in (
        lambda: api.get(f"/api/v1/projects/{pairwise_project.slug}/jobs/"),
        lambda: client.get(f"/projects/{pairwise_project.slug}/datasets/"),
    ):
        other = _import_job(pairwise_project, tmp_path)
        _running_since(other, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS + 5)
        client.force_login(researcher)
        assert read().status_code == 200
        other.refresh_from_db()
        assert other.status == JobStatus.FAILED


@pytest.mark.django_db
def test_cancelling_a_job_whose_worker_died_ends_it(pairwise_project, researcher, api_client_for, tmp_path, settings):
    """Long dead: the cancel ends it at once. Dead for a few seconds only: the cancel is noted, and the job ends
    cancelled (not failed) once the timeout shows the worker is gone."""
    api = api_client_for(researcher)
    long_dead = _import_job(pairwise_project, tmp_path)
    _running_since(long_dead, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS + 5)
    body = api.post(f"/api/v1/jobs/{long_dead.pk}/cancel/").json()
    assert body["status"] == "cancelled" and "the worker had stopped" in body["log"]

    just_dead = _import_job(pairwise_project, tmp_path)
    _running_since(just_dead, 5)
    assert api.post(f"/api/v1/jobs/{just_dead.pk}/cancel/").json()["status"] == "running"
    _running_since(just_dead, settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS + 5)
    body = api.get(f"/api/v1/jobs/{just_dead.pk}/").json()
    assert body["status"] == "cancelled" and "nothing kept" in body["log"]


@pytest.mark.django_db(transaction=True)
def test_a_live_job_whose_step_outlasts_the_timeout_keeps_beating(pairwise_project, tmp_path, settings, monkeypatch):
    """A step with no progress (parsing, zipping) longer than the heartbeat timeout: the worker's heartbeat file
    keeps the job alive for every read, and the job succeeds."""
    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = 1
    job = _import_job(pairwise_project, tmp_path)

    def slow_import(job, progress):
        time.sleep(2.5)
        return "", {"created": 1, "unchanged": 0}

    monkeypatch.setattr(jobs, "_run_import", slow_import)

    def work():
        try:
            services.data_job_execute(job_id=job.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    reaped = []
    for _ in range(4):
        time.sleep(0.5)
        reaped.append(services.data_jobs_reap_dead())
    worker.join()
    job.refresh_from_db()
    assert reaped == [0, 0, 0, 0] and job.status == JobStatus.SUCCEEDED, job.log
    assert not (job_dir(job) / HEARTBEAT_FILE).exists(), "nothing of the job's folder is left"


@pytest.mark.django_db
def test_labeler_jobs_of_a_dead_worker_fail_when_read(pairwise_project, researcher, api_client_for, settings, client):
    stale = timezone.now() - dt.timedelta(seconds=settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS + 5)
    make = lambda: LabelerJob.objects.create(  # noqa: E731
        project=pairwise_project, backend="local", model="m", status=JobStatus.RUNNING, heartbeat_at=stale
    )
    api = api_client_for(researcher)
    client.force_login(researcher)
    for read in (
        lambda job: api.get(f"/api/v1/labeler-jobs/{job.pk}/"),
        lambda job: api.get(f"/api/v1/projects/{pairwise_project.slug}/labeler-jobs/"),
        lambda job: client.get(f"/projects/{pairwise_project.slug}/labeler/"),
    ):
        job = make()
        assert read(job).status_code == 200
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and "worker died" in job.log


@pytest.mark.django_db(transaction=True)
def test_a_recipe_run_beats_while_it_works_and_is_reaped_once_its_worker_died(
    admin_user, client, settings, monkeypatch
):
    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = 1
    beats = []

    def slow_recipe(*, name, config, progress):
        for _ in range(3):
            beats.append(RecipeRun.objects.get().heartbeat_at)
            time.sleep(0.5)
        raise RecipeStopped()

    class RecipeStopped(runs.RecipeFailed):
        pass

    monkeypatch.setattr(runs, "recipe_config_build", lambda **values: {})
    monkeypatch.setattr(runs, "recipe_run", slow_recipe)
    monkeypatch.setattr("evaluation.tasks.recipe_run_execute_task.delay", lambda run_id: None)
    row = runs.recipe_run_start(name="humor", size="small", seed=0, created_by=None)
    runs.recipe_run_execute(recipe_run_id=row.pk)
    assert beats[0] < beats[1] < beats[2], beats  # stamped while the recipe worked, with no progress of its own

    RecipeRun.objects.filter(pk=row.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(seconds=5), finished_at=None
    )
    client.force_login(admin_user)
    assert client.get("/admin/evaluation/reciperun/").status_code == 200
    row.refresh_from_db()
    assert row.status == JobStatus.FAILED and "no heartbeat" in row.error and "worker died" in row.log
