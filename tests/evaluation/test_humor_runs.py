"""Humor as a benchmark: a model's captions against each contest's top human captions, judged by people (a
pairwise project Loupe creates, read back by the same benchmark) or by a judge model asked in both orders;
win-rates and Bradley-Terry ratings with intervals, hand-computed where the verdicts are scripted."""

import io
import json
import math

import pytest
from django.core.management import call_command

from annotation.models import Item, Project, Rating, Response
from evaluation import runners, selectors, services
from evaluation.benchmarks import humor
from evaluation.models import BenchmarkRun
from tests.annotation.feedback import judge, people

pytestmark = pytest.mark.django_db

SCALE = ["unfunny", "somewhat funny", "funny"]


@pytest.fixture
def contest():
    """Two contests; the top human caption of c1 is 'Top one' (by counts), of c2 'Best two' (by a summary mean,
    beating a caption whose imported counts are poor even with one Loupe 'funny' rating on top)."""
    project = Project.objects.create(slug="contest", name="contest", kind="rating", rating_levels=SCALE)
    c1 = Item.objects.create(project=project, external_id="c1", prompt="A cat at a desk.", image="")
    c2 = Item.objects.create(project=project, external_id="c2", prompt="A fish on a bike.", image="")
    Response.objects.bulk_create([
        Response(item=c1, position=0, text="Meh one", meta={"rating_counts": {"unfunny": 5, "funny": 1}}),
        Response(item=c1, position=1, text="Top one", meta={"rating_counts": {"funny": 4, "somewhat funny": 1}}),
        Response(item=c2, position=0, text="Best two", meta={"rating_summary": {"mean": 2.5, "precision": 0.1,
                                                                               "votes": 9}}),
        Response(item=c2, position=1, text="Poor two", meta={"rating_counts": {"unfunny": 3}}),
    ])  # fmt: skip
    rater = people("rater", 1)[0]
    poor = Response.objects.get(text="Poor two")
    Rating.objects.create(item=c2, response=poor, annotator=rater, client_request_id="r1", level=2)
    return project


def test_top_human_captions_rank_by_mean_rating(contest):
    top = selectors.contest_top_captions(project=contest, top_k=1)
    assert [(item.external_id, [r.text for r in rs]) for item, rs in top] == [("c1", ["Top one"]), ("c2", ["Best two"])]
    assert [len(rs) for _, rs in selectors.contest_top_captions(project=contest, top_k=5)] == [2, 2]


def test_people_judge_a_pairwise_project_loupe_creates_and_the_benchmark_reads_it_back(contest, admin_user):
    """Model 'tiny' beats 'Top one' twice (once shown first, once second) and loses to 'Best two' once: win-rate
    2/3; Bradley-Terry: 2 wins to 1 gives strengths in ratio 2, so +-ln(2)/2 centred, with an interval around it.
    A 'both bad' verdict is a tie."""
    pairs = services.humor_pairwise_project_create(
        contest_project=contest, slug="humor-pairs", captions={"c1": "Cat memo.", "c2": "Fish wheel."},
        model_name="tiny", created_by=admin_user,
    )  # fmt: skip
    assert pairs.kind == "pairwise"
    items = list(Item.objects.filter(project=pairs).order_by("id"))
    assert [[(r.text, r.model_name) for r in i.responses.order_by("position")] for i in items] == [
        [("Cat memo.", "tiny"), ("Top one", "human")],
        [("Fish wheel.", "tiny"), ("Best two", "human")],
    ]
    a1, a2, a3 = people("judge", 3)
    (m1, h1), (m2, h2) = [list(i.responses.order_by("position")) for i in items]
    judge(m1, h1, a1, "a")  # model shown first, chosen
    judge(h1, m1, a2, "b")  # model shown second, chosen
    judge(h2, m2, a1, "a")  # human chosen
    run = services.benchmark_run_start(benchmark="humor", config={"pairwise_project": "humor-pairs"})
    services.benchmark_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    tiny = run.summary["models"]["tiny"]
    assert tiny["win_rate"] == pytest.approx(2 / 3) and tiny["n_judgments"] == 3
    assert tiny["bt"] == pytest.approx(math.log(2) / 2, abs=1e-6)
    assert tiny["bt_low"] <= tiny["bt"] <= tiny["bt_high"]
    assert run.summary["human"]["bt"] == pytest.approx(-math.log(2) / 2, abs=1e-6)
    judge(m2, h2, a3, "both_bad")
    again = services.benchmark_run_start(benchmark="humor", config={"pairwise_project": "humor-pairs"})
    services.benchmark_run_execute(run_id=again.pk)
    again.refresh_from_db()
    assert again.summary["models"]["tiny"]["win_rate"] == pytest.approx(2.5 / 4)
    board = selectors.leaderboard()
    assert next(r for r in board["rows"] if r["model"] == "tiny")["results"]["humor"]["metrics"]["win_rate"] == 0.625


def test_a_judge_asked_in_both_orders_cancels_its_position_bias():
    """A judge that always picks the first caption ties every pair (win-rate 1/2, consistency 0); one that sees
    which caption is funnier wins or loses whatever the order."""
    pairs = [("cartoon", "model joke", "human joke"), ("cartoon 2", "model pun", "human pun")]
    first, _, unparsed = humor.verdicts_in_both_orders(pairs, lambda prompts: ["A"] * len(prompts))
    rate = humor.win_rate(first)
    assert (rate.win_rate, rate.ties, rate.position_consistency, unparsed) == (0.5, 2, 0.0, 0)

    def funnier_is_model(prompts):
        return ["A" if p.split("Caption A: ")[1].startswith("model") else "B." for p in prompts]

    fair, replies, _ = humor.verdicts_in_both_orders(pairs, funnier_is_model)
    assert humor.win_rate(fair).win_rate == 1.0 and fair == [("A", "B"), ("A", "B")]
    assert replies[0] == ("A", "B.")
    assert humor.parse_verdict("**B** is funnier") == "B" and humor.parse_verdict("Both are") is None


def test_humor_cli_judges_with_the_tiny_vlm_and_creates_a_pairwise_project(contest, tiny_vlm_dir, tmp_path):
    """`benchmark humor --contest-project contest --captions FILE --judge-model TINY`: every pair asked twice; the
    untrained judge names neither caption, so each is a tie (counted unparsed). `--create-pairwise-project`
    builds the project for people instead."""
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"c1": "Cat memo.", "c2": "Fish wheel."}))
    out = io.StringIO()
    call_command("benchmark", "humor", "--contest-project", "contest", "--captions", str(captions),
                 "--model-name", "tiny", "--judge-model", str(tiny_vlm_dir), "--judge-max-new-tokens", "4",
                 "--n-bootstrap", "20", stdout=out)  # fmt: skip
    body = json.loads(out.getvalue())
    assert body["judge_prompt_version"] == "humor-v1" and body["unparsed"] == 4
    assert body["models"]["tiny"]["win_rate"] == 0.5 and body["models"]["tiny"]["n_pairs"] == 2
    assert [len(p["detail"]["judge_replies"]) for p in body["per_pair"]] == [2, 2]
    out = io.StringIO()
    call_command("benchmark", "humor", "--contest-project", "contest", "--captions", str(captions),
                 "--model-name", "tiny", "--create-pairwise-project", "people-judge", stdout=out)  # fmt: skip
    assert json.loads(out.getvalue()) == {"created": "people-judge", "kind": "pairwise", "items": 2}


def test_humor_configs_are_checked(contest, admin_user, api_client_for, tiny_vlm_dir):
    client = api_client_for(admin_user)

    def start(config: dict) -> dict:
        response = client.post("/api/v1/benchmark-runs/", {"benchmark": "humor", "config": config}, format="json")
        assert response.status_code == 400, response.content
        return response.json()

    assert start({})["extra"] == {"field": "config.contest_project"}
    assert start({"pairwise_project": "contest"})["extra"] == {"field": "config.pairwise_project"}
    assert start({"contest_project": "contest"})["extra"] == {"field": "config.judge"}
    judged = {"contest_project": "contest", "judge": {"model": str(tiny_vlm_dir)}}
    assert start(judged)["message"].startswith("Humor win-rate needs a model")
    assert BenchmarkRun.objects.count() == 0


def test_a_humor_run_whose_model_writes_the_captions(contest, tiny_vlm_dir, settings, tmp_path):
    """Without a captions file the run's model captions each contest's cartoon (its image under MEDIA_ROOT); the
    judge then faces those captions with the top human ones, both orders, and the examples keep both replies."""
    from PIL import Image

    settings.MEDIA_ROOT = str(tmp_path)
    for item in Item.objects.filter(project=contest):
        Image.new("RGB", (48, 48), (30, 60, 220)).save(tmp_path / f"{item.external_id}.png")
        item.image = f"{item.external_id}.png"
        item.save()
    config = {"contest_project": "contest", "judge": {"model": str(tiny_vlm_dir), "max_new_tokens": 3},
              "max_new_tokens": 6, "n_bootstrap": 10}  # fmt: skip
    run = services.benchmark_run_start(benchmark="humor", config=config, model_path=str(tiny_vlm_dir))
    services.benchmark_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error + run.log
    answer = runners.model_answerer(model=str(tiny_vlm_dir), image_dir=tmp_path, max_new_tokens=6)
    written = answer([runners.ImagePrompt(f"{c}.png", services.HUMOR_CAPTION_PROMPT) for c in ("c1", "c2")])
    assert [e.answer for e in run.examples.order_by("index")] == written
    assert [e.input["human_caption"] for e in run.examples.order_by("index")] == ["Top one", "Best two"]
    assert run.summary["models"][str(tiny_vlm_dir)]["n_pairs"] == 2 and run.done == run.total == 2
