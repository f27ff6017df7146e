"""The leaderboard and benchmark run pages (server side): staff only, lineage and numbers shown, examples browsable
and filterable, POPE images served from the run's own folder and nowhere else."""

import json

import pytest
from django.test import Client

from annotation.models import JobStatus
from evaluation import services
from evaluation.models import BenchmarkExample, BenchmarkRun
from training.models import ModelArtifact


@pytest.fixture
def board(db):
    base = ModelArtifact.objects.create(name="base-vlm", location="/models/base")
    trained = ModelArtifact.objects.create(name="dpo-round-1", location="/models/r1", base=base)
    runs = {}
    for model, f1 in ((base, 0.61), (trained, 0.83)):
        runs[model.name] = BenchmarkRun.objects.create(
            benchmark="pope",
            model=model,
            status=JobStatus.SUCCEEDED,
            summary={"random": {"accuracy": f1, "f1": f1, "yes_ratio": 0.5, "precision": f1, "recall": f1}},
        )
    run = runs["dpo-round-1"]
    BenchmarkExample.objects.bulk_create(
        BenchmarkExample(
            run=run,
            index=i,
            key=f"random/{i + 1}",
            input={"image": f"../../etc/{i}.png", "text": f"Is there a dog number {i}?", "label": "no"},
            answer="Yes, there is." if i % 3 == 0 else "No.",
            detail={"parsed": "yes" if i % 3 == 0 else "no"},
            hallucinated=i % 3 == 0,
        )
        for i in range(60)
    )
    return runs


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_are_for_staff_only(board, researcher, annotator):
    """Non-staff users get 404 on the leaderboard, the run page and its images; anonymous users go to log in."""
    run = board["dpo-round-1"]
    for user in (researcher, annotator):
        client = _client(user)
        for url in ("/leaderboard/", f"/benchmarks/{run.pk}/", f"/benchmarks/{run.pk}/examples/0/image"):
            assert client.get(url).status_code == 404, url
    assert Client().get("/leaderboard/").status_code == 302


def test_leaderboard_shows_lineage_and_headline_numbers(board, admin_user):
    """Rows in lineage order with the base named; the POPE F1 per model links to its run."""
    html = _client(admin_user).get("/leaderboard/").content.decode()
    assert html.index("base-vlm</td>") < html.index("dpo-round-1</td>")
    row = html[html.index("dpo-round-1</td>") :]
    assert "<td>base-vlm</td>" in row[:200]
    assert f'href="/benchmarks/{board["dpo-round-1"].pk}/" class="cell" data-benchmark="pope">0.830</a>' in row
    assert "vendor/plotly/plotly.min.js" in html and 'id="leaderboard-data"' in html


def test_run_page_pages_and_filters_examples(board, admin_user):
    """50 examples a page; "hallucinated" keeps the 20 "yes" answers to absent objects."""
    client = _client(admin_user)
    run = board["dpo-round-1"]
    first = client.get(f"/benchmarks/{run.pk}/").content.decode()
    assert first.count('<tr class="example') == 50 and "page 1 of 2" in first
    assert "Is there a dog number 0?" in first and "Is there a dog number 50?" not in first
    second = client.get(f"/benchmarks/{run.pk}/?page=2").content.decode()
    assert second.count('<tr class="example') == 10
    wrong = client.get(f"/benchmarks/{run.pk}/?only=hallucinated").content.decode()
    assert wrong.count('<tr class="example hallucinated">') == 20 and "(20)" in wrong
    assert "Is there a dog number 1?" not in wrong
    assert "<td>random</td>" in first and "0.83" in first  # the summary table


def test_images_come_only_from_the_runs_folder(board, admin_user, tmp_path):
    """A POPE run's image is served; an image name that climbs out of the folder is not."""
    (tmp_path / "a.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "sub").mkdir()
    run = BenchmarkRun.objects.create(
        benchmark="pope", model_path="/m", config={"images": str(tmp_path / "sub")}, status=JobStatus.SUCCEEDED
    )
    BenchmarkExample.objects.create(run=run, index=0, key="r/1", input={"image": "../a.png"}, answer="")
    (tmp_path / "sub" / "b.png").write_bytes(b"\x89PNG real")
    BenchmarkExample.objects.create(run=run, index=1, key="r/2", input={"image": "b.png"}, answer="")
    client = _client(admin_user)
    assert client.get(f"/benchmarks/{run.pk}/examples/0/image").status_code == 404
    response = client.get(f"/benchmarks/{run.pk}/examples/1/image")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"\x89PNG real"
    assert client.get(f"/benchmarks/{run.pk}/examples/7/image").status_code == 404


def test_a_failed_run_page_shows_its_error_and_log(db, admin_user, tmp_path):
    """The error and the log's traceback are on the page, opened."""
    captions = tmp_path / "c.json"
    captions.write_text('[{"image_id": 1, "caption": "a dog"}]')
    annotations = tmp_path / "a.json"
    annotations.write_text('{"annotations": [{"image_id": 1, "caption": "a cat"}]}')
    run = services.benchmark_run_start(
        benchmark="chair", config={"captions": str(captions), "annotations": [str(annotations)]}
    )
    annotations.unlink()
    services.benchmark_run_execute(run_id=run.pk)
    html = _client(admin_user).get(f"/benchmarks/{run.pk}/").content.decode()
    assert f"--annotations file {annotations} does not exist" in html
    assert "<details open>" in html and "Traceback" in html


def test_the_leaderboard_form_starts_a_run_or_says_what_is_wrong(db, admin_user, researcher, tmp_path):
    """A good CHAIR config queues a run and opens its page; bad JSON and a missing file are refused with the reason;
    a non-staff POST starts nothing."""
    captions = tmp_path / "c.json"
    captions.write_text('[{"image_id": 1, "caption": "a dog"}]')
    config = json.dumps({"captions": str(captions), "annotations": [str(captions)]})
    client = _client(admin_user)
    response = client.post("/leaderboard/", {"benchmark": "chair", "config": config})
    run = BenchmarkRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/benchmarks/{run.pk}/"
    assert run.status == JobStatus.QUEUED and run.created_by == admin_user
    bad = client.post("/leaderboard/", {"benchmark": "chair", "config": "{oops"})
    assert bad.status_code == 400 and "The config is not valid JSON" in bad.content.decode()
    missing = client.post("/leaderboard/", {"benchmark": "chair", "config": '{"captions": "/nope.json"}'})
    assert (
        missing.status_code == 400
        and "config.captions must be the path of an existing file." in missing.content.decode()
    )
    assert _client(researcher).post("/leaderboard/", {"benchmark": "chair", "config": config}).status_code == 404
    assert BenchmarkRun.objects.count() == 1
