"""POPE: the published files, question construction rules, answer parsing and metrics on hand cases."""

from collections import Counter
from pathlib import Path

import pytest

from evaluation.benchmarks.pope import (
    ImageObjects,
    PopeConfig,
    PopeQuestion,
    answer_questions,
    build_questions,
    co_occurrence,
    images_from_coco_instances,
    images_from_shapes,
    object_frequencies,
    parse_answer,
    pope_metrics,
    read_questions,
    score_answers,
    write_questions,
)

POPE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pope"


@pytest.fixture(scope="module")
def published():
    return {s: read_questions(POPE_DIR / f"coco_pope_{s}.first300.jsonl") for s in ("random", "popular", "adversarial")}


def test_published_files_load_as_they_are(published, tmp_path):
    """The three real files load: 300 questions, 50 images, yes/no alternating, 3 of each per image."""
    for questions in published.values():
        assert len(questions) == 300 and len({q.image for q in questions}) == 50
        assert [q.question_id for q in questions] == list(range(1, 301))
        assert [q.label for q in questions] == ["yes", "no"] * 150
        per_image = Counter((q.image, q.label) for q in questions)
        assert set(per_image.values()) == {3}
    first = published["popular"][1]
    assert (first.image, first.text, first.label) == (
        "COCO_val2014_000000310196.jpg",
        "Is there a dining table in the image?",
        "no",
    )
    write_questions(published["random"], tmp_path / "copy.jsonl")
    assert (tmp_path / "copy.jsonl").read_text() == (POPE_DIR / "coco_pope_random.first300.jsonl").read_text()


def test_published_files_follow_construction_rules(published):
    """In the real files no "no" object is a "yes" object of its image, and popular negatives follow one order."""
    for questions in published.values():
        yes = {(q.image, q.text) for q in questions if q.label == "yes"}
        assert not any((q.image, q.text) in yes for q in questions if q.label == "no")
    # Popular: an image's negatives are the most frequent objects it lacks, in frequency order, so the order
    # "asked before" over all images has no cycle (one global ranking explains every image).
    before: dict[str, set[str]] = {}
    negatives: dict[str, list[str]] = {}
    for q in published["popular"]:
        if q.label == "no":
            negatives.setdefault(q.image, []).append(q.text)
    for negs in negatives.values():
        for i, earlier in enumerate(negs):
            before.setdefault(earlier, set()).update(negs[i + 1 :])
    ranked: list[str] = []
    remaining = {t for negs in negatives.values() for t in negs}
    while remaining:
        free = [t for t in remaining if not any(t in before.get(o, set()) for o in remaining)]
        assert free, "the popular negatives contradict any single frequency order"
        ranked += sorted(free)
        remaining -= set(free)
    assert ranked[0] == "Is there a person in the image?"  # the most frequent COCO object


def test_all_yes_model_on_real_split_scores_as_design_says(published):
    """An all-"yes" model on a balanced split: accuracy 50, precision 50, recall 100, F1 66.7, yes-ratio 100."""
    for questions in published.values():
        m = score_answers(questions, ["Yes, there is."] * len(questions))
        assert (m.accuracy, m.precision, m.recall, m.yes_ratio) == (0.5, 0.5, 1.0, 1.0)
        assert round(100 * m.f1, 1) == 66.7


@pytest.mark.parametrize(
    ("answer", "parsed"),
    [
        ("Yes, there is a dog in the image.", "yes"),
        ("No, there is no dog.", "no"),
        ("There is not a dog in the image.", "no"),
        ("Yes. There is no cat, though.", "yes"),  # only the first sentence counts
        ("NO", "yes"),  # the reference looks for "No", "no" and "not" only
        ("No.", "no"),
        ("no,", "no"),  # commas are dropped before splitting
        ("I don't see one", "yes"),  # "don't" is not "not"
        ("", "yes"),
    ],
)
def test_parse_answer_as_pope_evaluate(answer, parsed):
    """Answers read as POPE's evaluate.py reads them."""
    assert parse_answer(answer) == parsed


def test_metrics_hand_case():
    """TP 2, FP 1, TN 1, FN 1: accuracy 3/5, precision 2/3, recall 2/3, F1 2/3, yes-ratio 3/5."""
    m = pope_metrics(["yes", "yes", "yes", "no", "no"], ["yes", "yes", "no", "no", "yes"])
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 1, 1, 1)
    assert m.accuracy == pytest.approx(0.6) and m.yes_ratio == pytest.approx(0.6)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3) and m.f1 == pytest.approx(2 / 3)
    none_yes = pope_metrics(["no", "no"], ["yes", "no"])
    assert (none_yes.precision, none_yes.recall, none_yes.f1, none_yes.accuracy) == (0.0, 0.0, 0.0, 0.5)


IMAGES = [
    ImageObjects("1.jpg", ("person", "dog", "frisbee")),
    ImageObjects("2.jpg", ("person", "car", "dog", "bus")),
    ImageObjects("3.jpg", ("person", "car", "traffic light")),
    ImageObjects("4.jpg", ("cat", "couch", "tv")),
    ImageObjects("5.jpg", ("person", "car")),  # fewer than sample_num objects: skipped
]


def test_frequency_and_co_occurrence_order():
    """Objects by how many images hold them; co-occurring objects by how many images hold both."""
    kept = IMAGES[:4]
    assert object_frequencies(kept)[:3] == ["person", "dog", "car"]
    assert co_occurrence(kept)["dog"][:2] == ["person", "frisbee"]
    assert co_occurrence(kept)["car"][:3] == ["person", "dog", "bus"]


@pytest.mark.parametrize("setting", ["random", "popular", "adversarial"])
def test_construction_rules(setting):
    """Balanced per image, yes/no alternating, no "no" is a true object or a repeat, skips small images."""
    questions = build_questions(IMAGES, setting, PopeConfig(sample_num=3, seed=1))
    assert len(questions) == 24 and {q.image for q in questions} == {"1.jpg", "2.jpg", "3.jpg", "4.jpg"}
    for image in IMAGES[:4]:
        mine = [q for q in questions if q.image == image.image]
        assert [q.label for q in mine] == ["yes", "no"] * 3
        assert [q.object for q in mine if q.label == "yes"] == list(image.objects[:3])
        negatives = [q.object for q in mine if q.label == "no"]
        assert not set(negatives) & set(image.objects) and len(set(negatives)) == 3
    assert questions[0].text == "Is there a person in the image?"
    assert [q.question_id for q in questions] == list(range(1, 25))


def test_popular_and_adversarial_choices():
    """Popular asks the most frequent absent objects; adversarial the absent ones most co-occurring."""
    popular = build_questions(IMAGES, "popular", PopeConfig(sample_num=3))
    assert [q.object for q in popular if q.image == "4.jpg" and q.label == "no"] == ["person", "dog", "car"]
    assert [q.object for q in popular if q.image == "1.jpg" and q.label == "no"] == ["car", "bus", "traffic light"]
    adversarial = build_questions(IMAGES, "adversarial", PopeConfig(sample_num=3))
    first = [q.object for q in adversarial if q.image == "1.jpg" and q.label == "no"]
    # person's partners: dog (present), car; dog's: person (present), frisbee (present), car (asked), bus.
    assert first[:2] == ["car", "bus"]
    # 3.jpg tells the settings apart: adversarial asks car's partner "bus", popular the more frequent "frisbee".
    assert [q.object for q in adversarial if q.image == "3.jpg" and q.label == "no"][:2] == ["dog", "bus"]
    assert [q.object for q in popular if q.image == "3.jpg" and q.label == "no"] == ["dog", "frisbee", "bus"]
    cat_image = [q for q in adversarial if q.image == "4.jpg"]
    # cat, couch and tv co-occur only with each other, all present: every negative falls back to random.
    assert all(q.object not in {"cat", "couch", "tv"} for q in cat_image if q.label == "no")
    umbrella = [ImageObjects("u.jpg", ("umbrella",)), ImageObjects("v.jpg", ("apple",))]
    umbrella = build_questions(umbrella, "random", PopeConfig(sample_num=1))
    assert (
        umbrella[0].text == "Is there an umbrella in the image?"
        and umbrella[1].text == "Is there an apple in the image?"
    )


def test_shapes_world_questions_and_article():
    """Shapes-world scenes give "<colour> <shape>" objects; "an" before a vowel."""
    from annotation.shapes_world import scene_generate

    scenes = [scene_generate(seed=s) for s in range(40)]
    images = images_from_shapes(scenes)
    questions = build_questions(images, "adversarial", PopeConfig(sample_num=1))
    assert questions and all(q.text.startswith(("Is there a ", "Is there an ")) for q in questions)
    assert any(q.text.startswith("Is there an orange") for q in questions) or all(
        not q.object.startswith("orange") for q in questions
    )
    for image in images:
        assert all(q.object not in image.objects for q in questions if q.image == image.image and q.label == "no")


def test_images_from_coco_instances():
    """Distinct category names per image, in annotation order, images by file name."""
    instances = {
        "images": [{"id": 7, "file_name": "COCO_7.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [{"image_id": 7, "category_id": 3}, {"image_id": 7, "category_id": 1},
                        {"image_id": 7, "category_id": 3}],
    }  # fmt: skip
    assert images_from_coco_instances(instances) == [ImageObjects("COCO_7.jpg", ("car", "person"))]


def test_answer_questions_batches():
    """The model is called batch by batch and answers come back in question order."""
    questions = [PopeQuestion(i, "x.jpg", f"q{i}", "yes") for i in range(1, 8)]
    sizes = []

    def generate(batch):
        sizes.append(len(batch))
        return [f"a{q.question_id}" for q in batch]

    assert answer_questions(generate, questions, batch_size=3) == [f"a{i}" for i in range(1, 8)]
    assert sizes == [3, 3, 1]
    with pytest.raises(ValueError, match="returned 1 answers for 3 questions"):
        answer_questions(lambda batch: ["x"], questions, batch_size=3)
