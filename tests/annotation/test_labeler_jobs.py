"""AI labeler jobs: a real worker labels a shapes-world project with the tiny VLM (feedback rows, AI pairs in a
snapshot), a `serve_model` server stopped mid-job fails the job and a resume finishes without relabelling,
cancel and resume rules, the server-address policy, the CLI, and who may do what through the API."""

import hashlib
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation import services
from annotation.labeler.backends.local import LocalBackend
from annotation.labeler.config import LabelerConfig
from annotation.labeler.pipeline import AnswerToLabel, label_answers
from annotation.models import AIFeedback, JobStatus, LabelerJob, Response
from annotation.services.labeler import labeler_job_cancel, labeler_job_execute, labeler_job_resume, labeler_job_start
from loupe.errors import ApplicationError
from tests.helpers import wait_for, write_shapes_import


def _shapes_project(slug, researcher, annotator, tmp_path, n=4):
    project = services.project_create(slug=slug, kind="pairwise", created_by=researcher)
    services.project_member_add(project=project, user=annotator)
    source = write_shapes_import(tmp_path / slug, n=n, seed=11)
    services.items_import(project=project, path=source, images=source.parent)
    return project


@pytest.fixture
def shapes_project(db, researcher, annotator, tmp_path):
    return _shapes_project("shapes-labeler", researcher, annotator, tmp_path)


def _reference_scores(project, model_dir) -> dict[int, float]:
    """What the labeler gives each response when run here, in this process, without Django."""
    from django.conf import settings
    from PIL import Image

    answers = []
    for response in Response.objects.filter(project=project).select_related("item").order_by("item_id", "position"):
        image = Image.open(Path(settings.MEDIA_ROOT) / response.item.image).convert("RGB")
        answers.append(
            AnswerToLabel(
                key=str(response.pk),
                item_key=str(response.item_id),
                prompt=response.item.prompt,
                answer=response.text,
                image=image,
            )
        )
    labelled = label_answers(answers=answers, backend=LocalBackend.from_path(model_dir), config=LabelerConfig())
    return {int(a.answer.key): a.score for a in labelled}


# ------------------------------------------------------------------------------------------ a real worker


def test_a_labeler_job_runs_on_a_real_worker_and_its_pairs_reach_a_snapshot(
    celery_worker_process, researcher, annotator, tmp_path, tiny_vlm_dir, api_client_for
):
    """Started through the API, the worker on the `labeler` queue stores one verdict per response (the scores
    the labeler gives in-process), the job ends succeeded with its counts, and a snapshot holds AI pairs whose
    chosen answer scored higher than the rejected one."""
    project = _shapes_project("shapes-worker", researcher, annotator, tmp_path)
    client = api_client_for(researcher)
    started = client.post(
        f"/api/v1/projects/{project.slug}/labeler-jobs/start/",
        {"backend": "local", "model": str(tiny_vlm_dir), "config": {"batch_size": 3}},
        format="json",
    )
    assert started.status_code == 202, started.content
    assert started.json()["status"] == "queued" and started.json()["total"] == 8

    def finished():
        body = client.get(f"/api/v1/labeler-jobs/{started.json()['id']}/").json()
        return body if body["status"] not in ("queued", "running") else None

    body = wait_for(finished, timeout=180, message="the labeler job to end")
    assert body["status"] == "succeeded", body["log"] + celery_worker_process.log_path.read_text()[-3000:]
    assert (body["labelled"], body["done"], body["total"], body["progress"]) == (8, 8, 8, 1.0)
    assert body["questions"] > 0

    feedback = {f.response_id: f for f in AIFeedback.objects.filter(response__project=project)}
    assert {f.labeler_model for f in feedback.values()} == {str(tiny_vlm_dir)}
    assert {rid: f.score for rid, f in feedback.items()} == _reference_scores(project, tiny_vlm_dir)
    assert all(len(f.claims) == len(f.p_yes) == len(f.questions) > 0 for f in feedback.values())

    snapshot = services.snapshot_create(project=project, created_by=researcher)
    rows = [json.loads(line) for line in Path(snapshot.path).read_text().splitlines()]
    ai_rows = [row for row in rows if row.get("source") == "ai"]
    assert ai_rows, rows
    score_of_text = {f.response.text: f.score for f in feedback.values()}
    assert all(score_of_text[row["chosen"]] > score_of_text[row["rejected"]] for row in ai_rows)


def test_label_ai_wait_follows_a_job_on_the_worker_to_its_end(
    celery_worker_process, researcher, annotator, tmp_path, tiny_vlm_dir, capsys
):
    """`label_ai --wait` queues the job, follows its progress bar while the worker labels, and reports the
    answers labelled; a job that fails (an item's image gone) ends the command with the job's log."""
    from annotation.models import Item

    project = _shapes_project("shapes-cli", researcher, annotator, tmp_path, n=2)
    call_command("label_ai", project=project.slug, backend="local", model=str(tiny_vlm_dir), wait=True)
    out = capsys.readouterr()
    assert "succeeded: 4 answers labelled" in out.out and "answer" in out.err
    assert AIFeedback.objects.filter(response__project=project).count() == 4

    from django.conf import settings

    item = Item.objects.filter(project=project).order_by("id").first()
    (Path(settings.MEDIA_ROOT) / item.image).unlink()
    AIFeedback.objects.all().delete()
    with pytest.raises(CommandError, match=rf"ended failed:\n(.|\n)*The image of item {item.external_id}"):
        call_command("label_ai", project=project.slug, backend="local", model=str(tiny_vlm_dir), wait=True)


# ---------------------------------------------------------------------- a server stopped mid-job, resumed


@pytest.fixture(scope="module")
def yes_no_labeler_dir(tiny_vlm_dir, tmp_path_factory):
    """The tiny VLM fine-tuned to answer yes or no (the untrained one answers word salad, which a server-side
    labeler rightly refuses)."""
    from training.shapes_vision import fine_tune

    backend = LocalBackend.from_path(tiny_vlm_dir, batch_size=32)
    fine_tune(backend.model, backend.processing_class, seeds=range(1000, 1200), steps=60, lr=2e-3)
    folder = tmp_path_factory.mktemp("yes-no-labeler-jobs")
    backend.model.save_pretrained(folder)
    backend.processing_class.save_pretrained(folder)
    return folder


class CountingBackend:
    """The real OpenAI-compatible backend, noting the image of every question it is asked and calling
    `after_call` after each batch of questions (the test stops the server there)."""

    def __init__(self, backend, after_call):
        self.backend, self.after_call, self.name = backend, after_call, backend.name
        self.asked: list[str] = []

    def yes_probabilities(self, *, questions):
        verdicts = self.backend.yes_probabilities(questions=questions)
        self.asked += [hashlib.sha256(q.image.tobytes()).hexdigest() for q in questions]
        self.after_call()
        return verdicts

    def generate(self, **kwargs):
        return self.backend.generate(**kwargs)


def _image_digest(item) -> str:
    from django.conf import settings
    from PIL import Image

    return hashlib.sha256(Image.open(Path(settings.MEDIA_ROOT) / item.image).convert("RGB").tobytes()).hexdigest()


def test_a_server_stopped_mid_job_fails_it_and_resume_finishes_without_relabelling(
    shapes_project, researcher, yes_no_labeler_dir, monkeypatch
):
    """`serve_model` stops after the first chunk (one item's two answers): the job fails with the server's
    address in its log and keeps those two verdicts; resumed against the restarted server it asks no question
    about the first item's image, labels the other six answers, and the first two rows are the same rows."""
    from annotation.labeler import backends
    from training.serving import ServeConfig, serve

    server = serve(model_path=yes_no_labeler_dir, config=ServeConfig(port=0))
    port, real_open = int(server.url.rsplit(":", 1)[1]), backends.backend_open
    opened: list[CountingBackend] = []

    def open_counting(stop_after: int | None):
        def backend_open(**kwargs):
            calls = []

            def after_call():
                calls.append(1)
                if stop_after is not None and len(calls) == stop_after:
                    server.stop()

            opened.append(CountingBackend(real_open(**kwargs), after_call))
            return opened[-1]

        return backend_open

    job = labeler_job_start(
        project=shapes_project,
        backend="openai",
        model=server.model_name,
        base_url=server.url + "/v1",
        config={"batch_size": 2},
        created_by=researcher,
    )
    monkeypatch.setattr(backends, "backend_open", open_counting(stop_after=1))
    try:
        labeler_job_execute(job_id=job.pk)
    finally:
        server.stop()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert f"[loupe] the labeler failed: the labeler server at {server.url}/v1" in job.log
    assert "verdicts stored so far are kept" in job.log
    first = {f.pk: (f.response_id, f.score, f.created_at) for f in AIFeedback.objects.all()}
    assert len(first) == job.labelled == 2
    first_item = Response.objects.get(pk=next(iter(first.values()))[0]).item

    server = serve(model_path=yes_no_labeler_dir, config=ServeConfig(port=port))
    monkeypatch.setattr(backends, "backend_open", open_counting(stop_after=None))
    try:
        labeler_job_resume(job=job)
        labeler_job_execute(job_id=job.pk)
    finally:
        server.stop()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.log
    assert (job.labelled, job.skipped, job.done, job.total) == (8, 2, 8, 8)
    assert "[loupe] resume requested" in job.log
    assert AIFeedback.objects.count() == 8
    assert {f.pk: (f.response_id, f.score, f.created_at) for f in AIFeedback.objects.filter(pk__in=first)} == first
    asked = set(opened[-1].asked)
    others = {_image_digest(r.item) for r in Response.objects.filter(project=shapes_project).exclude(item=first_item)}
    assert _image_digest(first_item) not in asked and asked == others


# ------------------------------------------------------------------------------- cancel, resume, settings


class _CancelAfterFirstChunk:
    def __init__(self, backend, job):
        self.backend, self.job, self.name = backend, job, backend.name

    def yes_probabilities(self, *, questions):
        LabelerJob.objects.filter(pk=self.job.pk).update(cancel_requested=True)
        return self.backend.yes_probabilities(questions=questions)

    def generate(self, **kwargs):
        return self.backend.generate(**kwargs)


def test_a_cancel_stops_a_running_job_after_its_chunk_and_keeps_its_verdicts(shapes_project, tiny_vlm_dir, monkeypatch):
    """A cancel asked while the first chunk is being labelled ends the job cancelled after that chunk, with
    the chunk's verdicts kept; a resume then labels only the rest."""
    from annotation.labeler import backends

    real_open = backends.backend_open
    job = labeler_job_start(project=shapes_project, backend="local", model=str(tiny_vlm_dir), config={"batch_size": 2})
    monkeypatch.setattr(backends, "backend_open", lambda **kw: _CancelAfterFirstChunk(real_open(**kw), job))
    labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.labelled, AIFeedback.objects.count()) == (JobStatus.CANCELLED, 2, 2)
    assert "cancelled; the verdicts stored so far are kept" in job.log

    monkeypatch.setattr(backends, "backend_open", real_open)
    labeler_job_resume(job=job)
    labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.labelled, job.skipped, AIFeedback.objects.count()) == (JobStatus.SUCCEEDED, 8, 2, 8)


def test_cancel_and_resume_only_apply_to_the_states_that_allow_them(shapes_project, tiny_vlm_dir):
    """A queued job cancels at once and is never run; a cancelled one resumes; a queued one cannot resume and
    a finished one cannot be cancelled."""
    job = labeler_job_start(project=shapes_project, backend="local", model=str(tiny_vlm_dir))
    with pytest.raises(
        ApplicationError, match="Only failed or cancelled labeler jobs can be resumed; this one is queued."
    ):
        labeler_job_resume(job=job)
    job = labeler_job_cancel(job=job)
    assert job.status == JobStatus.CANCELLED and "cancelled before it started" in job.log
    labeler_job_execute(job_id=job.pk)  # a late delivery of the cancelled job does nothing
    assert AIFeedback.objects.count() == 0
    job = labeler_job_resume(job=job)
    labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    with pytest.raises(ApplicationError, match="A succeeded labeler job cannot be cancelled."):
        labeler_job_cancel(job=job)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "openai", "base_url": "http://169.254.169.254/v1"}, "is a link-local, multicast or reserved"),
        ({"backend": "openai", "base_url": "file:///etc/passwd"}, "must be http:// or https:// with a host"),
        ({"backend": "openai", "base_url": "http://no-such-host.invalid/v1"}, "does not resolve"),
        ({"backend": "local", "base_url": "http://127.0.0.1:8000/v1"}, "A local labeler takes no server URL."),
        ({"backend": "local", "prompt_version": "v99"}, "Invalid labeler settings"),
        ({"backend": "local", "config": {"batch_size": 0}}, "batch_size must be at least 1"),
        ({"backend": "local", "config": {"api_key": "x"}}, "Unknown labeler settings: api_key."),
        ({"backend": "local", "model": "  "}, "This field may not be blank."),
    ],
)
def test_bad_settings_are_refused_with_a_message(shapes_project, researcher, api_client_for, fields, message):
    """Each wrong setting is a 400 whose message names it, and no job is created."""
    body = {"model": "tiny", **fields}
    answer = api_client_for(researcher).post(
        f"/api/v1/projects/{shapes_project.slug}/labeler-jobs/start/", body, format="json"
    )
    assert answer.status_code == 400, answer.content
    assert message in json.dumps(answer.json())
    assert LabelerJob.objects.count() == 0


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000/v1", "http://10.1.2.3:8000/v1", "https://192.168.0.7/v1"])
def test_loopback_and_lan_servers_are_allowed_and_no_key_is_stored(
    shapes_project, researcher, api_client_for, base_url
):
    """A served model beside the worker or on the lab's network is a real use: the job is queued, and the key
    the worker will use is not among the job's fields."""
    answer = api_client_for(researcher).post(
        f"/api/v1/projects/{shapes_project.slug}/labeler-jobs/start/",
        {"backend": "openai", "model": "llava", "base_url": base_url + "/", "api_key": "secret"},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["base_url"] == base_url
    assert "secret" not in json.dumps(answer.json()) and "secret" not in json.dumps(
        list(LabelerJob.objects.values())[0], default=str
    )


def test_label_ai_queues_a_job_and_names_what_is_wrong(shapes_project, tiny_vlm_dir):
    """The command queues a job with its settings; an unknown project or bad settings are command errors."""
    call_command(
        "label_ai",
        project=shapes_project.slug,
        backend="local",
        model=str(tiny_vlm_dir),
        prompt_version="v1",
        config='{"batch_size": 4}',
    )
    job = LabelerJob.objects.get()
    assert (job.backend, job.model, job.config, job.total, job.status) == (
        "local",
        str(tiny_vlm_dir),
        {"batch_size": 4},
        8,
        JobStatus.QUEUED,
    )
    with pytest.raises(CommandError, match="No project 'nope'."):
        call_command("label_ai", project="nope", backend="local", model="m")
    with pytest.raises(CommandError, match="A local labeler takes no server URL."):
        call_command("label_ai", project=shapes_project.slug, backend="local", model="m", base_url="http://x/")


def test_a_job_started_on_a_snapshot_labels_only_its_items(researcher, outsider, api_client_for, tiny_vlm_dir):
    """A snapshot holding rows of i1 only scopes the job to i1's two answers; a snapshot of a project the user
    does not manage is the same 404 as a missing one, and a snapshot of another project they manage is
    refused with a message."""
    from tests.annotation.feedback import judge, project_with_items, refresh, responses_of

    project = project_with_items("snap", "pairwise", {"i1": ["a", "b"], "i2": ["c", "d"]}, created_by=researcher)
    judge(*responses_of(project, "i1"), researcher, "a")
    refresh(project)
    snapshot = services.snapshot_create(project=project, created_by=researcher)
    other = project_with_items("snap-other", "pairwise", {"o1": ["x", "y"]}, created_by=researcher)
    judge(*responses_of(other, "o1"), researcher, "a")
    refresh(other)
    other_snapshot = services.snapshot_create(project=other, created_by=researcher)
    foreign = project_with_items("snap-foreign", "pairwise", {"f1": ["x", "y"]}, created_by=outsider)
    judge(*responses_of(foreign, "f1"), outsider, "a")
    refresh(foreign)
    foreign_snapshot = services.snapshot_create(project=foreign, created_by=outsider)

    client = api_client_for(researcher)
    url = f"/api/v1/projects/{project.slug}/labeler-jobs/start/"
    body = {"backend": "local", "model": str(tiny_vlm_dir)}
    started = client.post(url, {**body, "snapshot": snapshot.pk}, format="json")
    assert started.status_code == 202, started.content
    i1 = responses_of(project, "i1")[0].item
    assert (started.json()["snapshot"], started.json()["item_ids"], started.json()["total"]) == (
        snapshot.pk,
        [i1.pk],
        2,
    )
    assert client.post(url, {**body, "snapshot": foreign_snapshot.pk}, format="json").status_code == 404
    refused = client.post(url, {**body, "snapshot": other_snapshot.pk}, format="json")
    assert refused.status_code == 400 and refused.json()["message"] == "The snapshot belongs to another project."

    job = LabelerJob.objects.get()
    labeler_job_execute(job_id=job.pk)
    assert sorted(AIFeedback.objects.values_list("response__item__external_id", flat=True)) == ["i1", "i1"]


# ---------------------------------------------------------------------------------------- who may do what


def test_only_the_projects_managers_may_start_watch_cancel_or_resume(
    shapes_project, researcher, annotator, outsider, api_client_for, tmp_path
):
    """The annotator of the project and the manager of another project get the project's 404 on every
    labeler endpoint; the manager lists, reads and cancels."""
    services.project_create(slug="otto-project", kind="pairwise", created_by=outsider)
    job = labeler_job_start(project=shapes_project, backend="local", model="m", created_by=researcher)
    endpoints = [
        ("post", f"/api/v1/projects/{shapes_project.slug}/labeler-jobs/start/"),
        ("get", f"/api/v1/projects/{shapes_project.slug}/labeler-jobs/"),
        ("get", f"/api/v1/labeler-jobs/{job.pk}/"),
        ("post", f"/api/v1/labeler-jobs/{job.pk}/cancel/"),
        ("post", f"/api/v1/labeler-jobs/{job.pk}/resume/"),
    ]
    for user in (annotator, outsider):
        client = api_client_for(user)
        for method, url in endpoints:
            answer = getattr(client, method)(url, {"backend": "local", "model": "m"}, format="json")
            assert answer.status_code == 404, (user.username, url, answer.status_code)
    anonymous = api_client_for(None)
    assert anonymous.get(f"/api/v1/labeler-jobs/{job.pk}/").status_code in (401, 403)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and LabelerJob.objects.count() == 1

    manager = api_client_for(researcher)
    listed = manager.get(f"/api/v1/projects/{shapes_project.slug}/labeler-jobs/")
    assert [j["id"] for j in listed.json()] == [job.pk]
    cancelled = manager.post(f"/api/v1/labeler-jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = manager.post(f"/api/v1/labeler-jobs/{job.pk}/cancel/")
    assert again.status_code == 400 and again.json()["message"] == "A cancelled labeler job cannot be cancelled."


def test_labeler_jobs_are_routed_to_their_own_queue():
    """The labeler task goes to the `labeler` queue, so GPU workers can take it apart from light jobs."""
    from annotation.tasks import labeler_job_execute_task
    from loupe.celery import app

    route = app.amqp.router.route({}, labeler_job_execute_task.name)
    assert labeler_job_execute_task.name == "labeler.job_execute" and route["queue"].name == "labeler"


def test_a_rewrite_job_keeps_each_rejected_answers_rewrite_for_the_correction_page(
    researcher, annotator, tmp_path, tiny_vlm_dir, api_client_for
):
    """With `rewrite`, every answer with rejected claims gets the model's greedy HA-DPO rewrite from those
    claims (the text `rewrite_answer` gives), and a correction task offers it in its suggestion."""
    from django.conf import settings
    from PIL import Image

    from annotation.labeler.pipeline import rewrite_answer

    project = services.project_create(
        slug="shapes-rewrite", kind="correction", created_by=researcher, show_ai_suggestions=True
    )
    services.project_member_add(project=project, user=annotator)
    source = write_shapes_import(tmp_path / "rw", n=1, seed=11)
    services.items_import(project=project, path=source, images=source.parent)
    job = labeler_job_start(
        project=project,
        backend="local",
        model=str(tiny_vlm_dir),
        rewrite=True,
        config={"max_new_tokens": 12},
    )
    labeler_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.log

    backend = LocalBackend.from_path(tiny_vlm_dir)
    rewrites = {}
    for feedback in AIFeedback.objects.select_related("response__item"):
        rejected = [c for c, p in zip(feedback.claims, feedback.p_yes, strict=True) if p <= 0.5]
        assert rejected  # the untrained model doubts every claim
        item = feedback.response.item
        image = Image.open(Path(settings.MEDIA_ROOT) / item.image).convert("RGB")
        expected = rewrite_answer(
            backend=backend,
            prompt=item.prompt,
            answer=feedback.response.text,
            image=image,
            rejected_claims=rejected,
            config=LabelerConfig(max_new_tokens=12),
        )
        assert feedback.rewrite == (
            {
                "text": expected.text,
                "original_spans": [list(s) for s in expected.original_spans],
                "rewrite_spans": [list(s) for s in expected.rewrite_spans],
            }
            if expected
            else {}
        )
        # Each verdict's source (a local model: its logits) and each claim's span in the answer are kept.
        assert feedback.sources == ["logits"] * len(feedback.claims)
        assert [feedback.response.text[start:end] for start, end in feedback.claim_spans] == feedback.claims
        rewrites[feedback.response_id] = feedback.rewrite.get("text")
    assert any(rewrites.values())

    task = api_client_for(annotator).post(f"/api/v1/projects/{project.slug}/tasks/next/").json()
    (shown,) = task["responses"]
    assert task["ai_suggestion"]["responses"][str(shown["id"])]["rewrite"] == rewrites[shown["id"]]
