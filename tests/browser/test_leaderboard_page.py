"""The leaderboard and a benchmark run's page in a real browser: POPE runs of a base model and a model trained from
it (the tiny VLM answering shapes-world questions), their lineage, plotly charts, and browsable examples with the
images the model was asked about."""

import json

import pytest
from django.contrib.auth import get_user_model

from annotation.models import Correction, Item, Project, Response
from evaluation import services
from evaluation.models import BenchmarkRun
from training.models import ModelArtifact

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_leaderboard_compares_models_and_the_run_page_shows_examples(
    page, login, live_server, admin_user, tiny_vlm_dir, tmp_path, screenshot_dir
):
    """Two models in lineage order with a POPE chart (one bar per setting and model) and a CHAIR chart; a run's
    page shows its per-setting summary and its questions with their images, filtered to the hallucinated ones."""
    base = ModelArtifact.objects.create(name="tiny-vlm-base", location=str(tiny_vlm_dir))
    trained = ModelArtifact.objects.create(name="tiny-vlm-dpo-r1", location=str(tiny_vlm_dir), base=base)
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps([{"image_id": 1, "caption": "A man with a dog and a cat."}]))
    annotations = tmp_path / "instances.json"
    annotations.write_text(
        json.dumps({"categories": [{"id": 1, "name": "person"}], "annotations": [{"image_id": 1, "category_id": 1}]})
    )
    for model in (base, trained):
        for benchmark, config in (
            ("pope", {"shapes": {"n_images": 3, "seed": 2, "settings": ["random", "adversarial"]}, "batch_size": 6}),
            ("chair", {"captions": str(captions), "annotations": [str(annotations)]}),
        ):
            run = services.benchmark_run_start(benchmark=benchmark, config=config, model=model)
            services.benchmark_run_execute(run_id=run.pk)
    shr = services.benchmark_run_start(
        benchmark="shr", config={"shapes": {"n_images": 2}, "max_new_tokens": 8}, model=trained
    )
    services.benchmark_run_execute(run_id=shr.pk)
    # People corrected both models' answers: the human evaluation run rates each, in its row.
    project = Project.objects.create(slug="mhumaneval", name="mhumaneval", kind="correction")
    annotator = get_user_model().objects.create_user(username="corrector", password="x")
    for model, types in (("tiny-vlm-base", ["object", "count"]), ("tiny-vlm-base", []), ("tiny-vlm-dpo-r1", [])):
        item = Item.objects.create(project=project, external_id=f"{model}-{len(types)}", prompt="Describe.")
        response = Response.objects.create(item=item, position=0, text="two red circles", model_name=model)
        segments = [
            {"start": i, "end": i + 1, "type": t, "replacement": "", "original": "t"} for i, t in enumerate(types)
        ]
        Correction.objects.create(item=item, response=response, annotator=annotator, client_request_id=item.external_id,
                                  segments=segments, corrected_text="x")  # fmt: skip
    human = services.benchmark_run_start(benchmark="human_eval", config={"project": "mhumaneval"})
    services.benchmark_run_execute(run_id=human.pk)
    assert set(BenchmarkRun.objects.values_list("status", flat=True)) == {"succeeded"}

    login(page, admin_user)
    page.click("text=Leaderboard")
    page.wait_for_selector("#chart-pope .main-svg")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(0).inner_text() == "tiny-vlm-base"
    assert [rows.nth(1).locator("td").nth(i).inner_text() for i in (0, 1)] == ["tiny-vlm-dpo-r1", "tiny-vlm-base"]
    assert rows.nth(1).locator("a.cell[data-benchmark=pope]").inner_text() == "0.667"  # the all-"yes" model's F1
    assert rows.nth(1).locator("a.cell[data-benchmark=chair]").inner_text() == "0.667"  # dog, cat of 3 mentions
    assert page.locator("#chart-pope .trace.bars").count() == 2  # random and adversarial, two models each
    assert page.locator("#chart-pope .point").count() == 4
    assert page.locator("#chart-chair .point").count() == 2
    widths = [page.locator(f"#chart-{b} .main-svg").first.bounding_box()["width"] for b in ("chair", "pope")]
    assert widths[0] == pytest.approx(widths[1], abs=2)  # side by side, neither drawn across the whole row
    assert rows.nth(0).locator("a.cell[data-benchmark=human_eval]").inner_text() == "0.500"  # 1 of 2 answers
    assert rows.nth(1).locator("a.cell[data-benchmark=human_eval]").inner_text() == "0.000"
    assert rows.nth(1).locator("a.cell[data-benchmark=shr]").count() == 1
    assert (
        rows.nth(0).locator("td").nth(6).inner_text() == "—"
    )  # the base has no SHR run (chair, human_eval, pope, shr)
    assert page.locator("#chart-human_eval .trace.bars").count() == 6  # five types and "any"
    page.screenshot(path=str(screenshot_dir / "leaderboard.png"), full_page=True)

    rows.nth(1).locator("a.cell[data-benchmark=pope]").click()
    page.wait_for_selector("#run-examples")
    assert page.locator("#run-summary tbody tr").count() == 2
    assert page.locator("#run-examples tr.example").count() == 12
    first_image = page.locator("#run-examples img").first
    first_image.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth", first_image.element_handle()) == 96
    page.click("text=hallucinated")
    page.wait_for_url("**only=hallucinated")
    wrong = page.locator("#run-examples tr.example")
    assert wrong.count() == 6
    assert all("truth: no" in wrong.nth(i).inner_text() for i in range(6))
    page.wait_for_function("() => [...document.images].every((img) => img.complete && img.naturalWidth)")
    page.screenshot(path=str(screenshot_dir / "benchmark-run.png"), full_page=True)

    page.goto(f"{live_server.url}/benchmarks/{shr.pk}/")
    page.wait_for_selector("#run-examples")
    assert page.locator("#run-examples tr.example").count() == 2
    assert "Judged by ground truth with prompt shapes-ground-truth." in page.locator("#run-judge").inner_text()
    page.wait_for_function("() => [...document.images].every((img) => img.complete && img.naturalWidth)")
    page.screenshot(path=str(screenshot_dir / "benchmark-run-shr.png"), full_page=True)
    page.goto(f"{live_server.url}/benchmarks/{human.pk}/")
    assert page.locator("#run-summary tbody tr").count() == 2  # one row per model, its rates by type
    page.screenshot(path=str(screenshot_dir / "benchmark-run-human-eval.png"), full_page=True)
