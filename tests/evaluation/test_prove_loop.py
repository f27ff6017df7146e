"""The end-to-end test of the product (issue 14): the hallucination recipe at `--size small`, one seed, through
Loupe's own paths, and the question it exists for: did the feedback lower hallucination?

The SFT'd tiny VLM (with pre-trained eyes) describes held-out scenes but gets some objects wrong; its own
answers on new scenes are corrected by simulated annotators through the annotation API, frozen into a snapshot
and trained on with DDPO (and DPO on the same pairs, and DPO on pairwise judgments). CHAIR on held-out scenes
(benchmark runs, as the leaderboard shows them) must be lower for the DDPO model than for the SFT model it
started from. Not tuned until it passes: `bench/prove_loop.py` runs the same recipe at full size over three
seeds, and the README's table is what it printed.
"""

import json

import pytest

from annotation.models import Correction, JobStatus, Project
from evaluation.models import BenchmarkRun
from evaluation.recipes import RecipeConfig, recipe_run
from training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_feedback_through_the_product_lowers_the_vlms_hallucination(tmp_path):
    config = RecipeConfig(size="small", seed=0, out_dir=str(tmp_path / "run"), models_dir=str(tmp_path / "models"))
    lines: list[str] = []
    path, report = recipe_run(name="hallucination", config=config, progress=lines.append)
    assert report["status"] == "succeeded" and json.loads(path.read_text()) == report

    # The feedback came through the annotation API into real projects: one correction per answer.
    corrections = next(s for s in report["stages"] if s["stage"] == "corrections through the annotation API")
    project = Project.objects.get(slug=corrections["project"])
    assert Correction.objects.filter(item__project=project).count() == corrections["answers"]
    assert corrections["answers"] == corrections["items"] > 290 and corrections["pairs"] > 100  # most were wrong
    assert all(run.status == JobStatus.SUCCEEDED for run in TrainingRun.objects.all())

    models = {row["label"]: row for row in report["results"]["models"]}
    assert set(models) == {"SFT", "DDPO (corrections)", "DPO (corrections)", "DPO (pairwise)"}
    for row in models.values():  # each figure is a benchmark run the leaderboard lists
        run = BenchmarkRun.objects.get(model__name=row["model"], benchmark="chair")
        assert run.status == JobStatus.SUCCEEDED and run.summary == row["chair"]

    sft, ddpo = models["SFT"]["chair"], models["DDPO (corrections)"]["chair"]
    # The SFT model reads the image: most of its descriptions of new scenes name only objects that are there.
    assert sft["CHAIR_s"] < 0.5, sft
    # The finding the product exists for: after feedback, fewer hallucinated objects, and not by naming fewer.
    assert ddpo["CHAIR_i"] < sft["CHAIR_i"], (sft, ddpo)
    assert ddpo["n_mentions"] >= 0.9 * sft["n_mentions"], (sft, ddpo)
