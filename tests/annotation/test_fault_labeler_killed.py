"""Issue 16, "Prove it" (faults): a real Celery worker process killed (SIGKILL) in the middle of an AI labeler job.
The broker does not hand the task to anyone again (stack-notes), so the job's heartbeat tells: once it is older
than the timeout, the next read ends the job failed with a one-line cause. The verdicts stored before the kill
are kept (each was committed on its own), and a resume on a second worker labels only the rest: every answer
ends with exactly one verdict and none of the first ones is asked again."""

import os
import signal
from collections.abc import Iterator

import pytest
from django.db.models import Count

from annotation import services
from annotation.models import AIFeedback, JobStatus, LabelerJob, Response
from tests.conftest import celery_workers
from tests.helpers import wait_for, write_shapes_import

# 20 shapes-world items of two answers each, labelled two answers a chunk: the worker commits a verdict every
# few hundred milliseconds, so the kill lands with some answers labelled and most still to do.
N_ITEMS = 20
BATCH_SIZE = 2
SHORT_HEARTBEAT_SECONDS = 2
REAPED = "[loupe] no heartbeat: the worker died; its verdicts are kept, resume does the rest\n"


@pytest.fixture
def start_labeler_worker(transactional_db, tmp_path) -> Iterator:
    """Start real `celery worker` processes on the `labeler` queue, each in its own process group so that the
    test can SIGKILL it with its children; every one still alive at the end is stopped."""
    yield from celery_workers(tmp_path, queues="labeler", log_name="labeler-worker")


def _verdicts(project) -> dict[int, tuple]:
    """Each stored verdict of the project by its row: which answer, its score and claims, when it was written."""
    return {
        f.pk: (f.response_id, f.score, tuple(f.p_yes), f.created_at)
        for f in AIFeedback.objects.filter(response__project=project)
    }


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_labeling_fails_the_job_keeps_its_verdicts_and_resume_labels_only_the_rest(
    start_labeler_worker, researcher, annotator, tmp_path, tiny_vlm_dir, api_client_for, settings
):
    project = services.project_create(slug="shapes-killed-labeler", kind="pairwise", created_by=researcher)
    services.project_member_add(project=project, user=annotator)
    source = write_shapes_import(tmp_path / "shapes", n=N_ITEMS, seed=11)
    services.items_import(project=project, path=source, images=source.parent)
    n_answers = Response.objects.filter(project=project).count()
    assert n_answers == 2 * N_ITEMS

    api = api_client_for(researcher)
    first = start_labeler_worker()
    started = api.post(
        f"/api/v1/projects/{project.slug}/labeler-jobs/start/",
        {"backend": "local", "model": str(tiny_vlm_dir), "config": {"batch_size": BATCH_SIZE}},
        format="json",
    )
    assert started.status_code == 202, started.content
    job_id = started.json()["id"]

    def mid_job():
        job = LabelerJob.objects.get(pk=job_id)
        assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING), job.log + first.log_path.read_text()[-3000:]
        return job.labelled > 0

    wait_for(mid_job, timeout=120, interval=0.05, message="the worker to store its first verdicts")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)

    kept = _verdicts(project)
    assert 0 < len(kept) < n_answers, "the kill did not land mid-job"
    assert LabelerJob.objects.get(pk=job_id).status == JobStatus.RUNNING  # nobody has noticed yet

    # The reaper runs on every read; a short timeout rather than the production two minutes.
    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = SHORT_HEARTBEAT_SECONDS

    def reaped():
        body = api.get(f"/api/v1/labeler-jobs/{job_id}/").json()
        return body if body["status"] != "running" else None

    body = wait_for(reaped, timeout=SHORT_HEARTBEAT_SECONDS + 10, interval=0.5, message="the dead job to be reaped")
    assert body["status"] == "failed", body
    assert body["log"].endswith(REAPED), body["log"]  # its last line, one line, says why
    assert body["log"].count("[loupe] no heartbeat") == 1 and "Traceback" not in body["log"]
    assert _verdicts(project) == kept, "the verdicts stored before the kill changed when the job was reaped"
    # A verdict and its count are committed together: the counters say what is stored.
    assert body["labelled"] == len(kept), body

    # A live resumed job must not be reaped between two heartbeats while the second worker loads the model.
    settings.LOUPE_HEARTBEAT_TIMEOUT_SECONDS = 120
    second = start_labeler_worker()
    resumed = api.post(f"/api/v1/labeler-jobs/{job_id}/resume/")
    assert resumed.status_code == 202 and resumed.json()["status"] == "queued", resumed.content

    def finished():
        body = api.get(f"/api/v1/labeler-jobs/{job_id}/").json()
        return body if body["status"] not in ("queued", "running") else None

    body = wait_for(finished, timeout=120, interval=0.2, message="the resumed job to end")
    assert body["status"] == "succeeded", body["log"] + second.log_path.read_text()[-3000:]
    assert "[loupe] resume requested" in body["log"]

    # Every answer labelled exactly once: one verdict each, the first ones untouched, the rest new.
    per_answer = AIFeedback.objects.filter(response__project=project).values("response_id").annotate(n=Count("id"))
    assert sorted(row["response_id"] for row in per_answer) == sorted(
        Response.objects.filter(project=project).values_list("pk", flat=True)
    )
    assert {row["n"] for row in per_answer} == {1}
    final = _verdicts(project)
    assert len(final) == n_answers
    assert {pk: final[pk] for pk in kept} == kept
    # The resume skipped what was done before the kill and labelled only the rest.
    assert (body["skipped"], body["labelled"], body["done"], body["total"]) == (
        len(kept),
        n_answers,
        n_answers,
        n_answers,
    ), body
    assert f"[loupe] succeeded: {n_answers - len(kept)} answers labelled in this run\n" in body["log"], body["log"]


# ------------------------------------------------------- killed between a verdict and its rewrite (in-process)


class WorkerKilled(BaseException):
    """Stands for SIGKILL inside the worker: nothing after it runs (a BaseException, as a dying process's)."""


@pytest.mark.django_db
def test_a_rewrite_job_killed_while_rewriting_leaves_no_verdict_without_its_rewrite(
    researcher, tmp_path, tiny_vlm_dir, monkeypatch
):
    """With `rewrite`, the process dies while the model writes the second answer's rewrite (the slow part): the
    first answer's verdict is stored with its rewrite, the second has no verdict at all (not one without its
    rewrite, which a resume would skip for good), and the resume gives every answer its verdict and rewrite."""
    from annotation.labeler import pipeline
    from annotation.services.labeler import labeler_job_execute, labeler_job_resume, labeler_job_start

    project = services.project_create(slug="shapes-killed-rewrite", kind="correction", created_by=researcher)
    source = write_shapes_import(tmp_path / "rw", n=2, seed=11)
    services.items_import(project=project, path=source, images=source.parent)
    rewritten: list[str] = []

    def rewrite_or_die(*, answer, die_at, **_):
        if len(rewritten) + 1 == die_at:
            raise WorkerKilled
        rewritten.append(answer)
        return pipeline.Rewrite(text=f"Rewritten: {answer}")

    job = labeler_job_start(
        project=project, backend="local", model=str(tiny_vlm_dir), rewrite=True, config={"batch_size": 2}
    )
    monkeypatch.setattr(pipeline, "rewrite_answer", lambda **kw: rewrite_or_die(die_at=2, **kw))
    with pytest.raises(WorkerKilled):
        labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    stored = list(AIFeedback.objects.filter(response__project=project).select_related("response"))
    assert (len(stored), job.labelled) == (1, 1), "a verdict was stored without its rewrite or its count"
    assert stored[0].rewrite["text"] == f"Rewritten: {stored[0].response.text}"

    monkeypatch.setattr(pipeline, "rewrite_answer", lambda **kw: rewrite_or_die(die_at=None, **kw))
    labeler_job_resume(job=job)
    labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.skipped, job.labelled, job.total) == (JobStatus.SUCCEEDED, 1, 4, 4), job.log
    final = AIFeedback.objects.filter(response__project=project).select_related("response")
    assert len(final) == 4
    assert all(f.rewrite.get("text") == f"Rewritten: {f.response.text}" for f in final), [f.rewrite for f in final]
    assert len(rewritten) == 4  # each answer rewritten once: the resume did not rewrite the first again
