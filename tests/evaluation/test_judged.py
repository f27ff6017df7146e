"""MMHal-style judged QA, SHR and MHumanEval-style human rates on hand-computed cases."""

import pytest

from evaluation.benchmarks.human_eval import human_eval_rates
from evaluation.benchmarks.mmhal import (
    JUDGE_PROMPT_V1,
    JUDGE_PROMPT_VERSION,
    MMHalItem,
    mmhal_evaluate,
    mmhal_metrics,
    parse_rating,
)
from evaluation.benchmarks.shr import (
    DescriptionSHR,
    parse_judgement,
    shr_from_classes,
    shr_judged,
    shr_shapes,
    split_sentences,
)


def test_mmhal_design_case():
    """Ratings [6, 3, 2, 0] give score 2.75 and hallucination rate 0.5 (below 3 is hallucinated)."""
    result = mmhal_metrics([6, 3, 2, 0])
    assert result.score == 2.75 and result.hallucination_rate == 0.5


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("The answer is fine.\nRating: 5, very informative, no hallucination", 5),
        ("rating: 0", 0),
        ("RATING: 2", 2),
        ("Rating: 4 ... on reflection Rating: 2", None),  # two ratings: the reference scores it 0
        ("I cannot rate this.", None),
        ("Rating: 7", None),
    ],
)
def test_mmhal_rating_parse(reply, rating):
    """Exactly one "rating: N" (N 0-6, any case), as eval_gpt_mmhal.py reads the judge."""
    assert parse_rating(reply) == rating


def test_mmhal_evaluate_through_judge_fn():
    """The judge gets the published rubric filled in; unparsed replies score 0 and are counted."""
    prompts = []
    replies = iter(["Good. Rating: 6", "Wrong count. Rating: 1", "no idea"])

    def judge(prompt):
        prompts.append(prompt)
        return next(replies)

    items = [
        MMHalItem(("Cat", "Lynx"), "How many cats?", "Two cats.", "Two cats.", "counting"),
        MMHalItem(("Cat",), "How many cats?", "One cat.", "Three cats.", "counting"),
        MMHalItem(("Tree",), "What is it?", "A tree.", "A tree.", "attribute"),
    ]
    result = mmhal_evaluate(items, judge)
    assert result.ratings == [6, 1, 0] and result.unparsed == 1
    assert result.score == pytest.approx(7 / 3) and result.hallucination_rate == pytest.approx(2 / 3)
    assert result.by_type == {"counting": 3.5, "attribute": 0.0}
    assert result.prompt_version == JUDGE_PROMPT_VERSION
    assert "### Image Contents\nCat, Lynx\n\n### Question\nHow many cats?" in prompts[0]
    assert prompts[1].endswith("### LMM Response to Evaluate\nThree cats.\n")
    assert JUDGE_PROMPT_V1.startswith("Please act as an impartial and objective judge")
    assert "- Rating: 0, not informative, with hallucination" in JUDGE_PROMPT_V1


def test_shr_judged_hand_case():
    """Five sentences in two descriptions; 2 hallucination, 2 correct, 1 cannot judge: SHR 2/5 (HA-DPO's ratio)."""
    prompts = []
    replies = iter(
        [
            "Judgement:\n1. correct: the dog sits.\n2. hallucination: it is brown.\n3. Cannot judge: mood.",
            "Sure.\nJudgement:\n\n1. hallucination: no cat.\n2. correct: a mouse.",
        ]
    )

    def judge(prompt):
        prompts.append(prompt)
        return next(replies)

    result = shr_judged(
        ["A dog sits. It is red. A happy scene.", "A cat sleeps. A mouse runs. A cat sleeps."], ["r1", "r2"], judge
    )
    assert [d.classes for d in result.descriptions] == [
        ["correct", "hallucination", "cannot judge"], ["hallucination", "correct"],
    ]  # fmt: skip
    assert result.n_sentences == 5 and result.n_hallucinated == 2 and result.n_unjudged == 0
    assert result.shr == pytest.approx(2 / 5) and result.prompt_version == "shr-hadpo-v1"
    # words (each sentence with its ".") : 3, 3, 3, 3, 3 -> hallucinated 6 of 15
    assert result.hal_words_ratio == pytest.approx(6 / 15)
    assert "Here are the region descriptions of the image:\nr1\n" in prompts[0]
    assert prompts[1].endswith("(hallucination, correct, or cannot judge): \n1. A cat sleeps\n2. A mouse runs\n\n")


def test_shr_sentences_and_judgement_parsing():
    """Sentences cut at every "." without repeats; a reply with the wrong number of lines judges nothing."""
    assert split_sentences("A dog. A dog. A big dog runs. dog. ") == ["A dog", "A big dog runs"]
    assert parse_judgement("Judgement:\n1. correct: ok", 2) == [None, None]
    assert parse_judgement("Judgement:\n1. correct: ok\n2. correct: and more", 1) == [None]
    assert parse_judgement("no header\n1. correct: ok", 1) == [None]
    assert parse_judgement("Judgement:\n1. Hallucination: x\n2. odd verdict", 2) == ["hallucination", "odd verdict"]
    result = shr_from_classes([DescriptionSHR(["a", "b"], ["odd verdict", None])])
    assert (result.n_sentences, result.n_unjudged, result.shr) == (0, 2, 0.0)


def test_shr_against_shapes_ground_truth():
    """A sentence naming a colour, shape or object not in the scene is hallucinated."""
    from annotation.shapes_world import Scene, SceneObject

    scene = Scene(seed=0, objects=[SceneObject("circle", "red", 10, 10, 8), SceneObject("star", "blue", 40, 40, 8)])
    text = "There are two objects. A red circle is on the left. A blue square is at the bottom. Everything is green."
    result = shr_shapes([text], [scene])
    assert result.descriptions[0].classes == ["correct", "correct", "hallucination", "hallucination"]
    assert result.shr == 0.5


def test_human_eval_rates_by_type():
    """Per type: share of judged answers with such a segment; "any": share with any segment."""
    result = human_eval_rates([["object", "object", "count"], [], ["attribute"], []])
    assert result.n_answers == 4
    assert result.rates == {
        "object": 0.25, "attribute": 0.25, "count": 0.25, "position": 0.0, "other": 0.0, "any": 0.5,
    }  # fmt: skip
    assert result.n_segments["object"] == 2
    with pytest.raises(ValueError, match="unknown hallucination type 'colour'"):
        human_eval_rates([["colour"]])
