"""`manage.py benchmark chair|captions|pope`: JSON on stdout with the papers' numbers, CommandError on bad inputs."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from evaluation import runners
from evaluation.benchmarks import pope

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
POPE_FILES = {s: SHARED / "pope" / f"coco_pope_{s}.first300.jsonl" for s in ("random", "popular", "adversarial")}


def run_benchmark(*args: str) -> dict:
    out = StringIO()
    call_command("benchmark", *args, stdout=out)
    return json.loads(out.getvalue())


def write_json(path: Path, data: object) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------------- CHAIR


@pytest.fixture
def chair_files(tmp_path):
    captions = write_json(
        tmp_path / "captions.json",
        [
            # person (man) and horse are true; dog (from "dogs", plural) and "hot dog" (two words) are not.
            {"image_id": 1, "caption": "A man riding a horse next to two dogs and a hot dog."},
            # cat is true (instances); couch ("sofa" in the synonyms) is only in the human captions file.
            {"image_id": 2, "caption": "A kitten sleeping on a sofa."},
            # teddy bear (two words, true) and bear alone would be wrong: only the two-word object counts.
            {"image_id": 3, "caption": "A teddy bear on a bed."},
        ],
    )
    instances = write_json(
        tmp_path / "instances.json",
        {
            "images": [{"id": 1}, {"id": 2}, {"id": 3}],
            "categories": [
                {"id": 1, "name": "person"},
                {"id": 19, "name": "horse"},
                {"id": 17, "name": "cat"},
                {"id": 88, "name": "teddy bear"},
            ],
            "annotations": [
                {"image_id": 1, "category_id": 1},
                {"image_id": 1, "category_id": 19},
                {"image_id": 2, "category_id": 17},
                {"image_id": 3, "category_id": 88},
            ],
        },
    )
    human = write_json(
        tmp_path / "captions_gt.json",
        {"annotations": [{"image_id": 2, "caption": "A cat lies on a couch."}, {"image_id": 3, "caption": "A toy."}]},
    )
    return captions, instances, human


def test_chair_prints_rates_and_per_caption_detail_matching_a_hand_count(chair_files):
    """Hand count: mentions man, horse, dog, hot dog | cat, couch | teddy bear, bed; wrong: dog, hot dog, bed."""
    captions, instances, human = chair_files
    body = run_benchmark("chair", "--captions", captions, "--annotations", instances, "--annotations", human)
    assert body["benchmark"] == "chair"
    assert body["n_mentions"] == 8 and body["n_hallucinated_mentions"] == 3
    assert body["CHAIR_i"] == pytest.approx(3 / 8)
    assert body["CHAIR_s"] == pytest.approx(2 / 3)
    first, second, third = body["per_caption"]
    assert first["detail"]["mentioned"] == [
        ["man", "person"],
        ["horse", "horse"],
        ["dog", "dog"],
        ["hot dog", "hot dog"],
    ]
    assert first["detail"]["hallucinated"] == [["dog", "dog"], ["hot dog", "hot dog"]]
    assert first["detail"]["CHAIR_i"] == pytest.approx(0.5) and first["hallucinated"] is True
    assert second["detail"]["ground_truth"] == ["cat", "couch"] and second["hallucinated"] is False
    assert third["detail"]["hallucinated"] == [["bed", "bed"]]


def test_chair_ground_truth_from_one_file_only_counts_that_file(chair_files):
    """Without the human captions file, the sofa of image 2 is a hallucination (couch is not in the instances)."""
    captions, instances, _ = chair_files
    body = run_benchmark("chair", "--captions", captions, "--annotations", instances)
    assert body["n_hallucinated_mentions"] == 4
    assert body["CHAIR_s"] == pytest.approx(1.0)
    assert body["per_caption"][1]["detail"]["hallucinated"] == [["sofa", "couch"]]


def test_chair_errors_name_the_file_and_field(chair_files, tmp_path):
    """Missing files, non-JSON, a missing field and a caption without its field are CommandErrors, not tracebacks."""
    captions, instances, _ = chair_files
    missing = str(tmp_path / "nope.json")
    with pytest.raises(CommandError, match=f"--captions file {missing} does not exist"):
        run_benchmark("chair", "--captions", missing, "--annotations", instances)
    with pytest.raises(CommandError, match=f"--annotations file {missing} does not exist"):
        run_benchmark("chair", "--captions", captions, "--annotations", missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(CommandError, match=f"--annotations file {broken}: not JSON"):
        run_benchmark("chair", "--captions", captions, "--annotations", str(broken))
    with pytest.raises(CommandError, match="missing field 'annotations'"):
        run_benchmark("chair", "--captions", captions, "--annotations", write_json(tmp_path / "x.json", {"images": []}))
    no_caption = write_json(tmp_path / "c.json", [{"image_id": 1, "text": "a dog"}])
    with pytest.raises(CommandError, match="item 0 needs an image_id and a caption"):
        run_benchmark("chair", "--captions", no_caption, "--annotations", instances)
    stranger = write_json(tmp_path / "s.json", [{"image_id": 99, "caption": "a dog"}])
    # An image no annotations file mentions has no objects (as in the reference): its dog is hallucinated.
    assert run_benchmark("chair", "--captions", stranger, "--annotations", instances)["CHAIR_i"] == 1.0


# ---------------------------------------------------------------------------------------- caption metrics


def test_captions_prints_coco_caption_metrics_equal_to_pycocoevalcap(tmp_path):
    """The CLI's figures are pycocoevalcap's on the same captions (several references per item as JSON lines)."""
    from evaluation.benchmarks.captions import caption_metrics

    predictions = ["a man riding a horse on a beach", "a cat sleeping on a red couch", "two dogs play in the snow"]
    references = [
        ["a man rides a horse along the beach", "a person on a horse by the sea"],
        ["a cat asleep on a couch"],
        ["two dogs playing in snow", "dogs run through the snow"],
    ]
    (tmp_path / "pred.txt").write_text("\n".join(predictions) + "\n", encoding="utf-8")
    (tmp_path / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in references) + "\n", encoding="utf-8")
    body = run_benchmark(
        "captions", "--predictions", str(tmp_path / "pred.txt"), "--references", str(tmp_path / "refs.jsonl")
    )
    expected = caption_metrics(predictions, references)
    for key in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "METEOR"):
        assert body[key] == pytest.approx(expected.corpus[key]), key
    assert [item["detail"] for item in body["per_caption"]] == expected.per_caption
    assert body["per_caption"][1]["answer"] == predictions[1]
    assert 0.3 < body["BLEU-1"] < 1.0 and 0.0 < body["METEOR"] < 1.0


def test_captions_errors_name_the_file(tmp_path):
    """Unequal counts and a JSON line without captions are CommandErrors naming the file (and line)."""
    pred = tmp_path / "pred.txt"
    pred.write_text("a dog\na cat\n", encoding="utf-8")
    refs = tmp_path / "refs.txt"
    refs.write_text("a dog\n", encoding="utf-8")
    with pytest.raises(CommandError, match=f"--predictions file {pred} has 2 captions but --references file {refs}"):
        run_benchmark("captions", "--predictions", str(pred), "--references", str(refs), "--no-meteor")
    refs.write_text('a dog\n{"label": 3}\n', encoding="utf-8")
    with pytest.raises(CommandError, match=f"--references file {refs}:2: no captions in this JSON line"):
        run_benchmark("captions", "--predictions", str(pred), "--references", str(refs), "--no-meteor")


# --------------------------------------------------------------------------------------------------- POPE


@pytest.fixture(scope="module")
def shapes_pope(tmp_path_factory):
    """POPE files (three settings) over shapes-world scenes, images in a folder, as the published files look."""
    folder = tmp_path_factory.mktemp("pope-shapes")
    questions = runners.pope_shapes_questions(
        n_images=3, seed=4, image_dir=folder / "images", settings=["random", "popular", "adversarial"]
    )
    files = {}
    for setting, rows in questions.items():
        files[setting] = folder / f"shapes_pope_{setting}.jsonl"
        pope.write_questions(rows, files[setting])
    return folder, files, questions


def test_pope_answers_with_the_tiny_vlm_and_scores_each_setting(shapes_pope, tiny_vlm_dir):
    """The tiny random VLM never says no, so each setting scores as the all-"yes" model of the paper."""
    folder, files, questions = shapes_pope
    args = ["pope", "--images", str(folder / "images"), "--model", str(tiny_vlm_dir), "--batch-size", "4"]
    for setting in ("random", "adversarial"):
        args += ["--questions", str(files[setting])]
    body = run_benchmark(*args)
    assert set(body) == {"benchmark", "random", "adversarial", "per_question"}
    for setting in ("random", "adversarial"):
        metrics = body[setting]
        assert metrics["n"] == len(questions[setting]) == 6
        assert metrics["accuracy"] == pytest.approx(0.5) and metrics["precision"] == pytest.approx(0.5)
        assert metrics["recall"] == 1.0 and metrics["f1"] == pytest.approx(2 / 3) and metrics["yes_ratio"] == 1.0
    rows = body["per_question"]
    assert len(rows) == 12
    assert [r["input"]["text"] for r in rows[:6]] == [q.text for q in questions["random"]]
    assert all(r["answer"] and r["detail"]["parsed"] == "yes" for r in rows)
    assert [r["hallucinated"] for r in rows[:6]] == [q.label == "no" for q in questions["random"]]


def test_pope_answers_are_the_models_greedy_answers_in_batches(shapes_pope, tiny_vlm_dir):
    """Batched answers equal one-at-a-time greedy answers of the same model on the same image."""
    folder, _, questions = shapes_pope
    answerer = runners.model_answerer(model=str(tiny_vlm_dir), image_dir=folder / "images", max_new_tokens=6)
    rows = questions["popular"]
    batched = runners.pope_run(questions={"popular": rows}, generate_fn=answerer, batch_size=3)
    single = [answerer([q])[0] for q in rows]
    assert [e["answer"] for e in batched.examples] == single
    # An oracle that answers from the label scores 100; one that inverts it scores 0 with yes-ratio 50.
    oracle = runners.pope_run(questions={"popular": rows}, generate_fn=lambda qs: [q.label.title() for q in qs])
    assert oracle.summary["popular"]["accuracy"] == 1.0
    liar = runners.pope_run(
        questions={"popular": rows}, generate_fn=lambda qs: ["No." if q.label == "yes" else "Yes." for q in qs]
    )
    assert liar.summary["popular"]["accuracy"] == 0.0 and liar.summary["popular"]["yes_ratio"] == 0.5


def test_pope_reads_the_published_files_and_names_missing_images(tmp_path, tiny_vlm_dir):
    """The real POPE files load with their settings from the names; a missing COCO image is named, not a traceback."""
    for path in POPE_FILES.values():  # no COCO images here: empty stand-ins, enough for the existence check
        for question in pope.read_questions(path):
            (tmp_path / question.image).touch()
    read = runners.pope_read(questions=[str(p) for p in POPE_FILES.values()], images=str(tmp_path))
    assert list(read) == ["random", "popular", "adversarial"]
    assert [len(rows) for rows in read.values()] == [300, 300, 300]
    assert sum(q.label == "yes" for q in read["adversarial"]) == 150
    empty = tmp_path / "empty"
    empty.mkdir()
    first = pope.read_questions(POPE_FILES["random"])[0]
    with pytest.raises(CommandError, match=f"question {first.question_id} asks about image {first.image}, not found"):
        run_benchmark(
            "pope", "--questions", str(POPE_FILES["random"]), "--images", str(empty), "--model", str(tiny_vlm_dir)
        )
    with pytest.raises(CommandError, match=f"--images folder {tmp_path / 'none'} does not exist"):
        run_benchmark(
            "pope", "--questions", str(POPE_FILES["random"]), "--images", str(tmp_path / "none"), "--model", "x"
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 1, "image": "a.jpg", "text": "Is there a dog?", "label": "maybe"}\n')
    with pytest.raises(CommandError, match="label must be 'yes' or 'no', not 'maybe'"):
        run_benchmark("pope", "--questions", str(bad), "--images", str(tmp_path), "--model", str(tiny_vlm_dir))
    bad.write_text('{"question_id": 1, "text": "Is there a dog?", "label": "no"}\n')
    with pytest.raises(CommandError, match=f"--questions file {bad}: a line lacks field 'image'"):
        run_benchmark("pope", "--questions", str(bad), "--images", str(tmp_path), "--model", str(tiny_vlm_dir))
    with pytest.raises(CommandError, match=f"--model folder {tmp_path / 'nomodel'} does not exist"):
        run_benchmark(
            "pope", "--questions", str(POPE_FILES["random"]), "--images", str(tmp_path), "--model",
            str(tmp_path / "nomodel"), "--limit", "2",
        )  # fmt: skip
