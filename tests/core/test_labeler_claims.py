"""The labeler's deterministic divide step and question templates, on fixed text: shapes-world captions and
answers written the way LLaVA-style models write them."""

import random

import pytest

from annotation.labeler.claims import claims_parse, question_from_claim, question_parse, split_claims
from annotation.shapes_world import scene_caption, scene_generate, scene_hallucinated_caption

LLAVA_ANSWER = (
    "The image shows a man riding a brown horse on a sandy beach. He is wearing a red shirt and a straw hat, "
    "while the waves crash behind him. There are e.g. two seagulls in the sky; the sun is setting.\n"
    "In the background, a white boat is anchored near the shore. The photo was taken at about 6.30 p.m."
)


def test_a_shapes_world_caption_splits_into_its_count_and_one_claim_per_object():
    """A caption becomes the count clause and one noun phrase per object, each with its exact span."""
    text = (
        "There are three objects: a blue star in the top left, a purple triangle in the centre and a red "
        "circle in the bottom left."
    )
    claims = split_claims(text)
    assert [c.text for c in claims] == [
        "There are three objects",
        "a blue star in the top left",
        "a purple triangle in the centre",
        "a red circle in the bottom left",
    ]
    assert all(text[c.start : c.end] == c.text for c in claims)
    assert [question_from_claim(c.text) for c in claims] == [
        "Are there three objects?",
        "Is there a blue star in the top left?",
        "Is there a purple triangle in the centre?",
        "Is there a red circle in the bottom left?",
    ]


def test_a_hallucinated_caption_has_exactly_its_planted_error_as_a_claim_the_truth_lacks():
    """Over many scenes, the claims of the hallucinated caption that the true caption does not make all lie
    inside the spans marked wrong, and there is at least one."""
    for seed in range(40):
        scene = scene_generate(seed=seed)
        truth = {c.text for c in split_claims(scene_caption(scene))}
        wrong_text, wrong_spans = scene_hallucinated_caption(scene, rng=random.Random(seed))
        new = [c for c in split_claims(wrong_text) if c.text not in truth]
        assert new, wrong_text
        for claim in new:
            assert any(claim.start <= s < claim.end for s, _ in wrong_spans), (claim, wrong_text, wrong_spans)


def test_a_llava_style_answer_splits_into_sentences_and_clauses_and_keeps_abbreviations_whole():
    """Sentences split at full stops (not after "e.g." nor inside "6.30" or "p.m."), clauses at ";", ", while";
    an opening phrase stays in the claim but not in its question."""
    claims = split_claims(LLAVA_ANSWER)
    assert [c.text for c in claims] == [
        "The image shows a man riding a brown horse on a sandy beach",
        "He is wearing a red shirt and a straw hat",
        "the waves crash behind him",
        "There are e.g. two seagulls in the sky",
        "the sun is setting",
        "In the background, a white boat is anchored near the shore",
        "The photo was taken at about 6.30 p.m",
    ]
    assert all(LLAVA_ANSWER[c.start : c.end] == c.text for c in claims)
    assert [question_from_claim(c.text) for c in claims] == [
        "Does the image show a man riding a brown horse on a sandy beach?",
        "Is he wearing a red shirt and a straw hat?",
        "Is it true that the waves crash behind him?",
        "Are there e.g. two seagulls in the sky?",
        "Is the sun setting?",
        "Is a white boat anchored near the shore?",
        "Was the photo taken at about 6.30 p.m?",
    ]


@pytest.mark.parametrize(
    ("claim", "question"),
    [
        ("Two red circles", "Are there two red circles in the image?"),
        ("A red car.", "Is there a red car in the image?"),
        ("There is one object", "Is there one object?"),
        ("Two people are walking", "Are two people walking?"),
        ("The bus has a blue stripe", "Does the bus have a blue stripe?"),
        ("Yes, it is a dog", "Is it a dog?"),
    ],
)
def test_question_templates(claim, question):
    """Each template form gives a grammatical yes/no question whose "yes" affirms the claim."""
    assert question_from_claim(claim) == question


def test_bulleted_lists_split_per_line():
    """A numbered or bulleted answer gives one claim per line, bullets left out of the claims and spans."""
    text = "1. A red car\n2. Two people are walking.\n- The bus has a blue stripe."
    claims = split_claims(text)
    assert [c.text for c in claims] == ["A red car", "Two people are walking", "The bus has a blue stripe"]
    assert all(text[c.start : c.end] == c.text for c in claims)


def test_a_models_division_parses_one_claim_per_line_and_is_refused_when_it_is_not_a_list():
    """Bullets and numbers are stripped and claims found verbatim get their span; an empty output or one with
    more lines than the answer has words is refused (None), so the splitter takes over."""
    answer = "A cat sits on a mat. The mat is red."
    claims = claims_parse("- A cat sits on a mat.\n2) The mat is red\n\nThe cat is black", answer=answer)
    assert [(c.text, c.start) for c in claims] == [
        ("A cat sits on a mat", 0),
        ("The mat is red", 21),
        (
            "The cat is black",
            None,
        ),
    ]
    assert claims_parse("   \n", answer=answer) is None
    assert claims_parse("\n".join(["x"] * 20), answer=answer) is None


def test_a_models_question_parses_when_it_is_one_question():
    """The first line, without a "Question:" label, if it ends with "?"; anything else is refused."""
    assert question_parse("Question: is there a cat on the mat?\nExplanation: ...") == "Is there a cat on the mat?"
    assert question_parse("The claim says there is a cat.") is None
    assert question_parse("") is None
