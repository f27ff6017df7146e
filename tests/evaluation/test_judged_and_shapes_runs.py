"""Object HalBench, MMHal, SHR, CHAIR on the shapes world and human evaluation as runnable benchmarks: the judge
reached through the AI labeler's backends (a local folder, or `serve_model`'s real HTTP server on a free port),
the judge prompt version stored with the result, figures hand-computed where the inputs are scripted."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from annotation.models import Correction, Item, Project, Response
from annotation.shapes_world import scene_caption
from evaluation import runners, selectors, services
from evaluation.benchmarks import mmhal as mmhal_core
from evaluation.benchmarks import shr as shr_core
from evaluation.models import BenchmarkRun
from loupe.errors import ApplicationError


def run_benchmark(*args: str) -> dict:
    out = io.StringIO()
    call_command("benchmark", *args, stdout=out)
    return json.loads(out.getvalue())


def write_json(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


MMHAL_ROWS = [
    {"question_type": "counting", "image_id": "q1", "image": "a.png", "image_content": ["Cat", "Lynx"],
     "question": "How many cats?", "gt_answer": "Two cats.", "model_answer": "There are two cats."},
    {"question_type": "counting", "image_id": "q2", "image": "b.png", "image_content": ["Dog"],
     "question": "How many dogs?", "gt_answer": "One dog.", "model_answer": "One dog."},
    {"question_type": "attribute", "image_id": "q3", "image": "a.png", "image_content": ["Tree"],
     "question": "What colour is the tree?", "gt_answer": "Green.", "model_answer": "It is blue."},
    {"question_type": "attribute", "image_id": "q4", "image": "b.png", "image_content": ["Car"],
     "question": "What colour is the car?", "gt_answer": "Red.", "model_answer": "A purple bus."},
]  # fmt: skip


def scripted_judge(replies_by_answer: dict[str, str], asked: list[str]):
    """A judge whose reply depends on the answer quoted in its prompt (so batching order cannot matter)."""

    def judge(prompts: list[str]) -> list[str]:
        asked.extend(prompts)
        return [next(r for a, r in replies_by_answer.items() if f"Evaluate\n{a}\n" in p) for p in prompts]

    return judge


def test_mmhal_run_scores_the_design_case_and_stores_the_prompt_version(tmp_path):
    """Ratings 6, 3, 2, 0 -> score 2.75, hallucination rate 0.5 (design §9), per type, with every prompt the
    published rubric filled with the item, asked in batches of 3, and progress counted to the end."""
    questions = write_json(tmp_path / "mmhal.json", MMHAL_ROWS)
    asked: list[str] = []
    replies = {
        "There are two cats.": "Accurate and detailed. Rating: 6, very informative with good analysis",
        "One dog.": "Correct but terse. Rating: 3",
        "It is blue.": "The tree is green. Rating: 2",
        "A purple bus.": "Wrong object entirely. rating: 0",
    }
    seen: list[tuple[int, int]] = []
    outcome = runners.mmhal_run(
        questions=questions,
        judge=scripted_judge(replies, asked),
        judge_name="scripted",
        judge_batch_size=3,
        progress=lambda done, total: seen.append((done, total)),
    )
    summary = outcome.summary
    assert summary["score"] == 2.75 and summary["hallucination_rate"] == 0.5 and summary["n"] == 4
    assert summary["score_by_type"] == {"counting": 4.5, "attribute": 1.0}
    assert summary["judge_prompt_version"] == "mmhal-v1" and summary["judge_model"] == "scripted"
    assert summary["unparsed"] == 0
    assert [e["detail"]["rating"] for e in outcome.examples] == [6, 3, 2, 0]
    assert [e["hallucinated"] for e in outcome.examples] == [False, False, True, True]
    assert asked[0] == mmhal_core.JUDGE_PROMPT_V1.format(
        "Cat, Lynx", "How many cats?", "Two cats.", MMHAL_ROWS[0]["model_answer"]
    )
    assert seen == [(3, 4), (4, 4)]


def test_shr_run_over_annotated_images_counts_sentences_as_ha_dpo(tmp_path):
    """Two descriptions (3 + 2 sentences); the judge calls 1 of the first and 1 of the second a hallucination
    and cannot judge one: SHR = 2 / 5; a reply with the wrong number of lines leaves its sentences unjudged."""
    items = write_json(
        tmp_path / "items.json",
        [
            {"image": "a.png", "regions": ["[0, 0, 10, 10]: a red ball"], "facts": "one ball",
             "description": "A red ball. It is on grass. The mood is calm."},
            {"image": "b.png", "regions": "[1, 1, 5, 5]: a dog", "description": "A dog sits. A cat sleeps."},
            {"image": "c.png", "regions": "[1, 1, 5, 5]: a cup", "description": "A cup. A plate."},
        ],
    )  # fmt: skip
    replies = {
        "A red ball": "Judgement:\n1. correct: yes\n2. hallucination: no grass\n3. cannot judge: mood",
        "A dog sits": "Judgement:\n1. correct: dog\n2. hallucination: no cat",
        "A cup": "Judgement:\n1. correct: cup",  # one line for two sentences: HA-DPO drops the description
    }

    def judge(prompts: list[str]) -> list[str]:
        return [next(r for key, r in replies.items() if f"1. {key}" in p) for p in prompts]

    outcome = runners.shr_run(items=items, judge=judge, judge_name="scripted", judge_batch_size=2)
    summary = outcome.summary
    assert summary["shr"] == pytest.approx(2 / 5) and summary["n_sentences"] == 5 and summary["n_unjudged"] == 2
    assert summary["judge_prompt_version"] == shr_core.JUDGE_PROMPT_VERSION == "shr-hadpo-v1"
    assert [e["hallucinated"] for e in outcome.examples] == [True, True, None]
    assert outcome.examples[0]["detail"]["hallucinated"] == [["It is on grass", "It is on grass"]]


def scripted_describer(captions_by_image: dict[str, str]):
    return lambda prompts: [captions_by_image[p.image] for p in prompts]


def test_chair_shr_and_halbench_on_shapes_scenes_against_ground_truth(tmp_path):
    """The model describes held-out scenes; scene 0 gets its true caption, scene 1 a caption naming one present
    and one absent object: CHAIR_s 1/2, CHAIR_i 1/(n0 + 2), SHR 1 / (sentences), Object HalBench as CHAIR."""
    drawn = runners.shapes_scenes(n_images=2, seed=5, image_dir=tmp_path / "probe", prefix="chair")
    (name0, scene0), (name1, scene1) = drawn
    present = scene1.objects[0]
    absent = next(
        (c, s) for c in ("red", "green", "blue") for s in ("circle", "star")
        if (c, s) not in {(o.colour, o.shape) for o in scene1.objects}
    )  # fmt: skip
    wrong = f"There is a {present.colour} {present.shape}. There is a {absent[0]} {absent[1]}."
    describe = scripted_describer({name0: scene_caption(scene0), name1: wrong})
    chair = runners.chair_shapes_run(n_images=2, seed=5, image_dir=tmp_path / "c", answer_fn=describe, batch_size=1)
    n0 = len(scene0.objects)
    assert chair.summary["CHAIR_s"] == 0.5 and chair.summary["n_mentions"] == n0 + 2
    assert chair.summary["CHAIR_i"] == pytest.approx(1 / (n0 + 2))
    assert chair.examples[1]["detail"]["hallucinated"] == [[f"{absent[0]} {absent[1]}"] * 2]
    assert (tmp_path / "c" / name0).is_file() and chair.examples[0]["input"]["image"] == name0

    describe_h = scripted_describer(
        {n.replace("chair", "halbench"): t for n, t in [(name0, scene_caption(scene0)), (name1, wrong)]}
    )
    halbench = runners.object_halbench_run(
        shapes={"n_images": 2, "seed": 5}, shapes_dir=tmp_path / "h", answer_fn=describe_h
    )
    assert halbench.summary["response_rate"] == 0.5 and halbench.summary["mention_rate"] == chair.summary["CHAIR_i"]

    describe_s = scripted_describer(
        {n.replace("chair", "shr"): t for n, t in [(name0, scene_caption(scene0)), (name1, wrong)]}
    )
    shr = runners.shr_run(shapes={"n_images": 2, "seed": 5}, shapes_dir=tmp_path / "s", answer_fn=describe_s)
    n_sentences = len(shr_core.split_sentences(scene_caption(scene0))) + 2
    assert shr.summary["shr"] == pytest.approx(1 / n_sentences) and shr.summary["n_hallucinated"] == 1
    assert shr.summary["judge_prompt_version"] == "shapes-ground-truth"
    assert [e["hallucinated"] for e in shr.examples] == [False, True]


def test_shapes_scenes_are_held_out_from_the_data_generator(tmp_path):
    """No held-out scene has the seed of a scene `shapes_world_items` draws for the first 1000 items of seeds 0-9."""
    drawn = runners.shapes_scenes(n_images=50, seed=0, image_dir=tmp_path, prefix="x")
    training_seeds = {s * 1_000_003 + i for s in range(10) for i in range(1000)}
    assert not {scene.seed for _, scene in drawn} & training_seeds


@pytest.mark.parametrize("n_images", [1, 2])
def test_pope_on_one_or_two_shapes_scenes_asks_about_objects_of_the_whole_world(tmp_path, n_images):
    """The known bug: with 1-2 scenes the scenes held no absent object. Now every "no" names a colour x shape pair
    not in its scene, drawn from the whole world, and each setting is 50/50."""
    questions = runners.pope_shapes_questions(
        n_images=n_images, seed=0, image_dir=tmp_path, settings=["random", "popular", "adversarial"]
    )
    drawn = runners.shapes_scenes(n_images=n_images, seed=0, image_dir=tmp_path / "probe", prefix="pope")
    truth = {name: {f"{o.colour} {o.shape}" for o in scene.objects} for name, scene in drawn}
    for rows in questions.values():
        assert len(rows) == 2 * n_images
        assert sum(q.label == "yes" for q in rows) == sum(q.label == "no" for q in rows)
        for q in rows:
            assert (q.object in truth[q.image]) == (q.label == "yes")


# ------------------------------------------------------------------------------ the judge through the backends


@pytest.fixture(scope="module")
def judged_inputs(tmp_path_factory, tiny_vlm_dir):
    """Two MMHal questions and two SHR items over shapes scenes, images in a folder."""
    from annotation.shapes_world import scene_generate, scene_render

    folder = tmp_path_factory.mktemp("judged")
    for i in range(2):
        scene_render(scene_generate(seed=40 + i, width=48, height=48)).save(folder / f"s{i}.png")
    mmhal = write_json(
        folder / "mmhal.json", [{**row, "image": f"s{i % 2}.png"} for i, row in enumerate(MMHAL_ROWS[:2])]
    )
    items = write_json(
        folder / "items.json",
        [{"image": f"s{i}.png", "regions": ["[0, 0, 16, 16]: a red circle"], "facts": ""} for i in range(2)],
    )
    return folder, mmhal, items


def test_mmhal_and_shr_with_a_local_judge_on_the_tiny_vlm(judged_inputs, tiny_vlm_dir):
    """`benchmark mmhal|shr --model TINY --judge-model TINY`: the model answers, the local backend judges; the
    untrained model's replies hold no rating, so each scores 0 (counted unparsed) and the replies are stored."""
    folder, mmhal, items = judged_inputs
    common = ["--model", str(tiny_vlm_dir), "--images", str(folder), "--max-new-tokens", "8",
              "--judge-model", str(tiny_vlm_dir), "--judge-max-new-tokens", "6"]  # fmt: skip
    body = run_benchmark("mmhal", "--questions", mmhal, *common)
    assert body["n"] == 2 and body["score"] == 0 and body["unparsed"] == 2 and body["hallucination_rate"] == 1
    assert body["judge_prompt_version"] == "mmhal-v1" and body["judge_model"] == str(tiny_vlm_dir)
    assert all(row["answer"] and row["detail"]["judge_reply"] for row in body["per_question"])
    shr = run_benchmark("shr", "--items", items, *common)
    assert shr["n_descriptions"] == 2 and shr["judge_prompt_version"] == "shr-hadpo-v1"
    assert all(row["detail"]["judge_reply"] for row in shr["per_caption"])


SHORT_MMHAL = "Rate 0-6.\nQ: {1}\nTruth: {2}\nAnswer: {3}\nRating:"
SHORT_SHR = "Judge each sentence.\n{0}\n{2}Judgement:\n"


def test_the_judge_through_serve_model_replies_as_the_local_judge(judged_inputs, tiny_vlm_dir, monkeypatch):
    """The same benchmark with the judge behind `serve_model`'s OpenAI-compatible server (real HTTP on a free
    port, API key from the environment) stores the same greedy judge replies and figures as the local judge.
    The tiny VLM's context is 512 tokens, so the judge gets short prompts registered as their own versions
    (stored with the result); the published rubric is refused by the server with a message that says so."""
    from training.serving import ServeConfig, serve

    folder, mmhal, items = judged_inputs
    monkeypatch.setitem(mmhal_core.JUDGE_PROMPTS, "test-short", SHORT_MMHAL)
    monkeypatch.setitem(shr_core.JUDGE_PROMPTS, "test-short", SHORT_SHR)
    monkeypatch.setenv("JUDGE_KEY", "judge-secret")
    answering = ["--model", str(tiny_vlm_dir), "--images", str(folder), "--max-new-tokens", "8"]
    local_args = ["--judge-model", str(tiny_vlm_dir), "--judge-max-new-tokens", "6", "--prompt-version", "test-short"]
    with serve(model_path=tiny_vlm_dir, config=ServeConfig(port=0, api_key="judge-secret", max_batch=8)) as server:
        served_args = ["--judge-kind", "openai", "--judge-url", server.url + "/v1", "--judge-model",
                       server.model_name, "--judge-api-key-env", "JUDGE_KEY",
                       "--judge-max-new-tokens", "6"]  # fmt: skip
        for name, flag, path in (("mmhal", "--questions", mmhal), ("shr", "--items", items)):
            served = run_benchmark(name, flag, path, *answering, *served_args, "--prompt-version", "test-short")
            local = run_benchmark(name, flag, path, *answering, *local_args)
            per = "per_question" if name == "mmhal" else "per_caption"
            replies = [r["detail"]["judge_reply"] for r in served[per]]
            assert all(replies) and replies == [r["detail"]["judge_reply"].strip() for r in local[per]]
            assert served["judge_model"] == server.model_name and served["judge_prompt_version"] == "test-short"
            assert {k: v for k, v in served.items() if k not in (per, "judge_model")} == {
                k: v for k, v in local.items() if k not in (per, "judge_model")
            }
        with pytest.raises(CommandError, match="the judge failed: .* answered HTTP 400: .*context is 512 tokens"):
            run_benchmark("mmhal", "--questions", mmhal, *answering, *served_args)
        with pytest.raises(CommandError, match="answered HTTP 401"):
            run_benchmark("mmhal", "--questions", mmhal, *served_args[:-4], "--judge-api-key-env", "NO_SUCH_KEY")


def test_cli_errors_name_what_is_missing(judged_inputs, tmp_path, tiny_vlm_dir):
    folder, mmhal, items = judged_inputs
    with pytest.raises(CommandError, match="needs a judge model: give --judge-model"):
        run_benchmark("mmhal", "--questions", mmhal)
    with pytest.raises(CommandError, match="--judge-model folder .*nowhere does not exist"):
        run_benchmark("mmhal", "--questions", mmhal, "--judge-model", str(tmp_path / "nowhere"))
    bad = write_json(tmp_path / "bad.json", [{"question": "q", "image_content": []}])
    with pytest.raises(CommandError, match=r"bad.json: item 1 lacks field 'gt_answer'"):
        run_benchmark("mmhal", "--questions", bad, "--judge-model", str(tiny_vlm_dir))
    no_answers = write_json(tmp_path / "na.json", [{"question": "q", "image_content": [], "gt_answer": "a"}])
    with pytest.raises(CommandError, match="item 1 has no 'model_answer'; give --model"):
        run_benchmark("mmhal", "--questions", no_answers, "--judge-model", str(tiny_vlm_dir))
    with pytest.raises(CommandError, match="--shapes needs --model"):
        run_benchmark("chair", "--shapes", "3")
    with pytest.raises(CommandError, match="give --captions FILE"):
        run_benchmark("chair")
    with pytest.raises(CommandError, match="--judge-url"):
        run_benchmark("shr", "--items", items, "--judge-kind", "openai", "--judge-model", "m")


def test_chair_on_shapes_through_the_cli_scores_the_models_own_descriptions(tmp_path, tiny_vlm_dir):
    """`benchmark chair --shapes 3 --model TINY`: three held-out scenes described by the model's greedy decoding
    (the same text `model_answerer` gives), scored with the shapes vocabulary."""
    body = run_benchmark("chair", "--shapes", "3", "--seed", "1", "--model", str(tiny_vlm_dir),
                         "--max-new-tokens", "8", "--shapes-dir", str(tmp_path))  # fmt: skip
    assert body["n_captions"] == 3 and body["vocabulary"] == "shapes-world"
    rows = body["per_caption"]
    answer = runners.model_answerer(model=str(tiny_vlm_dir), image_dir=tmp_path, max_new_tokens=8)
    assert [r["answer"] for r in rows] == answer(
        [runners.ImagePrompt(r["input"]["image"], "Describe the image.") for r in rows]
    )


# ------------------------------------------------------------------------------------ runs, API, leaderboard


def correction_project(slug: str, marks: dict[str, list[list[list[str]]]], users) -> Project:
    """A correction project: per model, per answer, one list of segment types per annotator who corrected it."""
    project = Project.objects.create(slug=slug, name=slug, kind="correction")
    for model, answers in marks.items():
        for i, per_annotator in enumerate(answers):
            item = Item.objects.create(project=project, external_id=f"{model}-{i}", prompt="Describe.")
            response = Response.objects.create(item=item, position=0, text="x" * 40, model_name=model)
            for user, types in zip(users, per_annotator, strict=False):
                segments = [{"start": k, "end": k + 1, "type": t, "replacement": "", "original": "x"}
                            for k, t in enumerate(types)]  # fmt: skip
                Correction.objects.create(
                    item=item, response=response, annotator=user, client_request_id=f"{model}-{i}-{user.pk}",
                    segments=segments, corrected_text="x",
                )  # fmt: skip
    return project


def test_human_eval_rates_by_type_per_model_next_to_automatic_metrics(db, make_user, admin_user, api_client_for):
    """base: 4 answers judged (object+count, attribute, clean, object twice by two people) -> object 2/4, any 3/4;
    tuned: 2 answers (one 'position/relation'), 1 uncorrected response not counted. On the leaderboard both rows
    show their human rates, tuned's beside its CHAIR run."""
    ann1, ann2 = make_user("h1"), make_user("h2")
    project = correction_project(
        "mhumaneval",
        {
            "base": [[["object", "count"]], [["attribute"]], [[]], [["object"], ["object"]]],
            "tuned": [[["position/relation"]], [[], []]],
        },
        [ann1, ann2],
    )
    item = Item.objects.create(project=project, external_id="uncorrected", prompt="Describe.")
    Response.objects.create(item=item, position=0, text="never corrected", model_name="tuned")
    client = api_client_for(admin_user)
    started = client.post("/api/v1/benchmark-runs/", {"benchmark": "human_eval", "config": {"project": "mhumaneval"}},
                          format="json")  # fmt: skip
    assert started.status_code == 201, started.content
    services.benchmark_run_execute(run_id=started.json()["id"])
    run = BenchmarkRun.objects.get(pk=started.json()["id"])
    assert run.status == "succeeded", run.error
    base, tuned = run.summary["models"]["base"], run.summary["models"]["tuned"]
    assert base["n_answers"] == 4 and base["object"] == 0.5 and base["count"] == 0.25 and base["any"] == 0.75
    assert tuned["n_answers"] == 2 and tuned["position/relation"] == 0.5 and tuned["any"] == 0.5
    assert run.summary["types"] == ["object", "attribute", "count", "position/relation", "other"]
    board = client.get("/api/v1/leaderboard/").json()
    rows = {row["model"]: row for row in board["rows"]}
    assert rows["base"]["results"]["human_eval"]["metrics"]["any"] == 0.75
    assert rows["tuned"]["results"]["human_eval"]["metrics"]["n_answers"] == 2
    assert {"name": "human_eval", "headline": "any", "lower_is_better": True} in board["benchmarks"]
    assert [r["name"] for r in selectors.summary_rows(run=run)] == ["base", "tuned"]


def test_new_kinds_refuse_bad_configs_with_the_field_named(db, admin_user, api_client_for, tmp_path, tiny_vlm_dir):
    client = api_client_for(admin_user)
    questions = write_json(tmp_path / "mmhal.json", MMHAL_ROWS)
    Project.objects.create(slug="pairs", name="pairs", kind="pairwise")

    def start(body: dict) -> dict:
        response = client.post("/api/v1/benchmark-runs/", body, format="json")
        assert response.status_code == 400, response.content
        return response.json()

    assert "config.judge" in json.dumps(start({"benchmark": "mmhal", "config": {"questions": questions}}))
    bad_kind = start({"benchmark": "mmhal", "config": {"questions": questions, "judge": {"kind": "gpt", "model": "m"}}})
    assert "config.judge.kind" in json.dumps(bad_kind)
    no_url = start({"benchmark": "shr", "config": {"items": questions, "judge": {"kind": "openai", "model": "m"}}})
    assert "config.judge.base_url" in json.dumps(no_url)
    version = {"questions": questions, "judge": {"model": str(tiny_vlm_dir)}, "prompt_version": "v9"}
    assert "config.prompt_version" in json.dumps(start({"benchmark": "mmhal", "config": version}))
    assert "needs a model" in json.dumps(start({"benchmark": "chair", "config": {"shapes": {"n_images": 2}}}))
    assert "config.project" in json.dumps(start({"benchmark": "human_eval", "config": {"project": "pairs"}}))
    assert "config.responses" in json.dumps(
        start({"benchmark": "object_halbench", "config": {"annotations": [questions]}})
    )
    with pytest.raises(ApplicationError, match="config.shapes.seed"):
        services.benchmark_config_check(benchmark="shr", config={"shapes": {"seed": -1}}, model_dir=str(tiny_vlm_dir))


def test_an_mmhal_run_stores_the_judge_and_prompt_version_and_shows_the_ratings(
    db, admin_user, api_client_for, tmp_path, tiny_vlm_dir
):
    """A run judged by a local judge: the examples hold each reply and rating, the summary the prompt version;
    the run page shows the rating and the reply; the leaderboard shows MMHal's score."""
    client = api_client_for(admin_user)
    questions = write_json(tmp_path / "mmhal.json", MMHAL_ROWS[:2])
    started = client.post(
        "/api/v1/benchmark-runs/",
        {"benchmark": "mmhal", "model_path": "answers-in-file",
         "config": {"questions": questions, "judge": {"model": str(tiny_vlm_dir), "max_new_tokens": 4}}},
        format="json",
    )  # fmt: skip
    assert started.status_code == 201, started.content
    assert started.json()["config"]["prompt_version"] == "mmhal-v1"
    services.benchmark_run_execute(run_id=started.json()["id"])
    run = BenchmarkRun.objects.get(pk=started.json()["id"])
    assert run.status == "succeeded", run.error + run.log
    assert run.summary["judge_prompt_version"] == "mmhal-v1" and run.summary["judge_model"] == str(tiny_vlm_dir)
    assert run.done == run.total == 2
    browser = Client()
    browser.force_login(admin_user)
    html = browser.get(f"/benchmarks/{run.pk}/").content.decode()
    assert "rating 0 of 6 (no rating in the reply: 0)" in html and "judge's reply" in html
    assert f"Judged by {tiny_vlm_dir} with prompt mmhal-v1." in html
    board = client.get("/api/v1/leaderboard/").json()
    assert board["rows"][0]["results"]["mmhal"]["metrics"]["score"] == 0


def test_object_halbench_from_responses_and_from_a_model_describing_coco_images(tmp_path, tiny_vlm_dir):
    """Responses 'Two dogs next to a hot dog.' (image with a dog) and 'A teddy bear.' (image with a person), counted
    by hand: mentions dog (plural), hot dog (a two-word object, not a dog) and teddy bear; hot dog and teddy bear
    are absent, so 2 of 3 mentions and both responses hallucinate. With --model the model describes the
    instances' images, and its greedy text is what is scored."""
    from PIL import Image

    instances = write_json(
        tmp_path / "instances.json",
        {
            "images": [{"id": 1, "file_name": "one.png"}, {"id": 2, "file_name": "two.png"}],
            "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
            "annotations": [{"image_id": 1, "category_id": 18}, {"image_id": 2, "category_id": 1}],
        },
    )
    responses = write_json(
        tmp_path / "responses.json",
        [{"image_id": 1, "caption": "Two dogs next to a hot dog."}, {"image_id": 2, "caption": "A teddy bear."}],
    )
    body = run_benchmark("object_halbench", "--responses", responses, "--annotations", instances)
    assert (body["n_responses"], body["n_mentions"], body["n_hallucinated_mentions"]) == (2, 3, 2)
    assert body["response_rate"] == 1.0 and body["mention_rate"] == pytest.approx(2 / 3)
    assert body["per_caption"][0]["detail"]["hallucinated"] == [["hot dog", "hot dog"]]
    unique = run_benchmark("object_halbench", "--responses", responses, "--annotations", instances, "--unique-mentions")
    assert unique["n_mentions"] == 3  # dog, hot dog, teddy bear: each once per response anyway

    for name in ("one.png", "two.png"):
        Image.new("RGB", (48, 48), (200, 30, 30)).save(tmp_path / name)
    described = run_benchmark("object_halbench", "--model", str(tiny_vlm_dir), "--images", str(tmp_path),
                              "--annotations", instances, "--max-new-tokens", "8")  # fmt: skip
    assert described["n_responses"] == 2
    answer = runners.model_answerer(model=str(tiny_vlm_dir), image_dir=tmp_path, max_new_tokens=8)
    expected = answer([runners.ImagePrompt(n, runners.DESCRIBE_PROMPT) for n in ("one.png", "two.png")])
    assert [r["answer"] for r in described["per_caption"]] == expected
    with pytest.raises(CommandError, match="image two.png not found"):
        (tmp_path / "two.png").unlink()
        run_benchmark(
            "object_halbench", "--model", str(tiny_vlm_dir), "--images", str(tmp_path), "--annotations", instances
        )
