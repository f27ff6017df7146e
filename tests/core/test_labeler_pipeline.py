"""The labeler's pipeline over a scripted backend: divide, questions, conquer, score, pairs, resume after a
failure, progress, the model-prompted steps with their fallbacks, the rewrite and candidates.

The backend here is a plain object with the backend interface that answers from the shapes world's ground
truth (it stands in for a model, which other tests cover); it counts what it is asked.
"""

import random

import pytest

from annotation.labeler.backends import LabelerBackendError
from annotation.labeler.claims import question_from_claim, split_claims
from annotation.labeler.config import LabelerConfig
from annotation.labeler.pipeline import (
    AnswerToLabel,
    LabelerScorer,
    candidates_sample,
    label_answers,
    pairs_from_labelled,
    rewrite_answer,
)
from annotation.labeler.prompts import prompt_set
from annotation.labeler.verdicts import YesNoVerdict
from annotation.shapes_world import scene_caption, scene_generate, scene_hallucinated_caption

CONQUER = prompt_set("v1").conquer


class OracleBackend:
    """Says yes (P 0.9) to the questions of true claims about an image, no (P 0.8) to others; fails once
    ``fail_after`` questions have been answered; writes what ``outputs`` maps a prompt's start to. Its
    "images" are scene ids, and ``true_questions`` holds (image, question) pairs."""

    name = "oracle"

    def __init__(self, true_questions: set[str], *, fail_after: int | None = None, outputs=None) -> None:
        self.true_questions = {(image, CONQUER.format(question=q)) for image, q in true_questions}
        self.fail_after = fail_after
        self.asked: list[str] = []
        self.outputs = outputs or {}
        self.prompts: list[str] = []
        self.generate_kwargs: list[dict] = []

    def yes_probabilities(self, *, questions):
        verdicts = []
        for question in questions:
            if self.fail_after is not None and len(self.asked) >= self.fail_after:
                raise LabelerBackendError("the labeler server at http://127.0.0.1:1 cannot be reached")
            self.asked.append(question.text)
            true = (question.image, question.text) in self.true_questions
            verdicts.append(YesNoVerdict(p_yes=0.9 if true else 0.1, p_no=0.1 if true else 0.8, source="logits"))
        return verdicts

    def generate(self, *, prompts, images, max_new_tokens, temperature=0.0, top_p=1.0):
        self.prompts.extend(prompts)
        self.generate_kwargs.append({"images": images, "temperature": temperature, "top_p": top_p})
        return [next((out for start, out in self.outputs.items() if p.startswith(start)), "") for p in prompts]


def shapes_answers(n: int) -> tuple[list[AnswerToLabel], set[str]]:
    """Two answers per scene (true caption, hallucinated caption) and the questions of all true claims."""
    answers, true_questions = [], set()
    for seed in range(n):
        scene = scene_generate(seed=seed)
        truth, wrong = scene_caption(scene), scene_hallucinated_caption(scene, rng=random.Random(seed))[0]
        true_questions |= {(seed, question_from_claim(c.text)) for c in split_claims(truth)}
        for kind, text in (("truth", truth), ("wrong", wrong)):
            answers.append(
                AnswerToLabel(
                    key=f"{seed}-{kind}", item_key=str(seed), prompt="Describe the image.", answer=text, image=seed
                )
            )
    return answers, true_questions


def test_truthful_answers_score_zero_and_are_chosen_over_hallucinated_ones():
    """Every true caption keeps all its claims (score 0), every hallucinated one loses at least one, and each
    item's pair has the true caption as chosen, with the claims, questions and P(yes) kept per claim."""
    answers, true_questions = shapes_answers(6)
    backend = OracleBackend(true_questions)
    labelled = list(label_answers(answers=answers, backend=backend, config=LabelerConfig(batch_size=4)))
    by_key = {a.answer.key: a for a in labelled}
    for seed in range(6):
        truth, wrong = by_key[f"{seed}-truth"], by_key[f"{seed}-wrong"]
        assert truth.score == 0.0
        assert wrong.score <= -1.0
        assert truth.p_yes == [pytest.approx(0.9)] * len(truth.claims)
        assert [c.claim.text for c in truth.claims] == [c.text for c in split_claims(truth.answer.answer)]
        assert truth.claims[0].question == question_from_claim(truth.claims[0].claim.text)
    pairs = pairs_from_labelled(labelled, config=LabelerConfig(length_balance=False))
    assert sorted((p.item_key, p.meta["chosen_response"], p.meta["rejected_response"]) for p in pairs) == [
        (str(s), f"{s}-truth", f"{s}-wrong") for s in range(6)
    ]


def test_the_same_question_about_the_same_item_is_asked_once():
    """Both captions of a scene share their true claims; each (item, question) reaches the backend once."""
    answers, true_questions = shapes_answers(4)
    backend = OracleBackend(true_questions)
    list(label_answers(answers=answers, backend=backend, config=LabelerConfig(batch_size=8)))
    distinct = {(a.item_key, question_from_claim(c.text)) for a in answers for c in split_claims(a.answer)}
    assert len(backend.asked) == len(distinct) < sum(len(split_claims(a.answer)) for a in answers)


def test_a_failure_keeps_what_was_labelled_and_resume_finishes_without_relabelling():
    """The backend fails during the third chunk: the first two chunks' answers were already yielded, the error
    reaches the caller, and a resumed run given their keys asks only about the rest, with the same results
    as a run that never failed."""
    answers, true_questions = shapes_answers(6)
    config = LabelerConfig(batch_size=4)
    reference = {
        a.answer.key: a.score
        for a in label_answers(answers=answers, backend=OracleBackend(true_questions), config=config)
    }
    first_two_chunks = OracleBackend(true_questions)
    list(label_answers(answers=answers[:8], backend=first_two_chunks, config=config))

    stored: dict[str, float] = {}
    failing = OracleBackend(true_questions, fail_after=len(first_two_chunks.asked) + 1)
    with pytest.raises(LabelerBackendError, match="cannot be reached"):
        for result in label_answers(answers=answers, backend=failing, config=config):
            stored[result.answer.key] = result.score
    assert sorted(stored) == sorted(a.key for a in answers[:8])

    progress = []
    resumed = OracleBackend(true_questions)
    for result in label_answers(
        answers=answers,
        backend=resumed,
        config=config,
        done=set(stored),
        progress=lambda p: progress.append((p.labelled, p.skipped, p.questions, p.total)),
        total=len(answers),
    ):
        assert result.answer.key not in stored
        stored[result.answer.key] = result.score
    assert stored == reference
    rest = {(a.item_key, question_from_claim(c.text)) for a in answers[8:] for c in split_claims(a.answer)}
    assert len(resumed.asked) == len(rest)
    assert progress == [(4, 8, len(rest), 12)]


def test_model_division_and_questions_are_used_when_they_parse_and_fall_back_when_not():
    """A model division that parses is used ("model"); an unparsable one falls back to the splitter
    ("rules-fallback"); a question that is not one falls back to the template ("template-fallback")."""
    divide, question = prompt_set("v1").divide, prompt_set("v1").question
    good = AnswerToLabel(key="a", item_key="1", prompt="p", answer="A cat sits on a mat. The mat is red.")
    bad = AnswerToLabel(key="b", item_key="1", prompt="p", answer="A dog barks.")
    outputs = {
        divide.format(answer=good.answer): "- A cat sits on a mat\n- The mat is red",
        divide.format(answer=bad.answer): "",
        question.format(claim="A cat sits on a mat"): "Question: Is a cat sitting on a mat?",
        question.format(claim="The mat is red"): "The mat is red.",
        question.format(claim="A dog barks"): "Does a dog bark?",
    }
    backend = OracleBackend({(None, "Is a cat sitting on a mat?"), (None, "Does a dog bark?")}, outputs=outputs)
    config = LabelerConfig(divide="model", questions="model")
    first, second = label_answers(answers=[good, bad], backend=backend, config=config)
    assert first.claims_source == "model" and second.claims_source == "rules-fallback"
    assert [(c.claim.text, c.claim.start, c.question, c.question_source) for c in first.claims] == [
        ("A cat sits on a mat", 0, "Is a cat sitting on a mat?", "model"),
        ("The mat is red", 21, "Is the mat red?", "template-fallback"),
    ]
    assert [(c.question, c.question_source, c.verdict.accepted) for c in second.claims] == [
        ("Does a dog bark?", "model", True)
    ]
    assert first.score == -1.0


def test_rewrite_asks_with_the_rejected_claims_or_marked_segments_and_returns_the_changed_spans():
    """The prompt lists the rejected claims (or quotes the marked parts); a "Corrected answer:" label is
    dropped; the spans mark what changed; nothing to correct, or an unchanged answer, gives None."""
    answer = "There are two objects: a red circle on the left and a blue star at the top."
    corrected = "There are two objects: a red circle on the left and a green star at the top."
    backend = OracleBackend(set(), outputs={"Here is a question": "Corrected answer: " + corrected})
    rewrite = rewrite_answer(
        backend=backend, prompt="Describe.", answer=answer, rejected_claims=["a blue star at the top"]
    )
    assert rewrite.text == corrected
    assert [answer[s:e] for s, e in rewrite.original_spans] == ["blue"]
    assert [corrected[s:e] for s, e in rewrite.rewrite_spans] == ["green"]
    assert "Wrong statements:\n- a blue star at the top" in backend.prompts[-1]
    start = answer.index("blue")
    rewrite_answer(backend=backend, prompt="Describe.", answer=answer, segments=[(start, start + 4, "", "wrong")])
    assert 'Wrong parts:\n- "blue"' in backend.prompts[-1]
    assert rewrite_answer(backend=backend, prompt="Describe.", answer=answer) is None
    same = OracleBackend(set(), outputs={"Here is a question": answer + " "})
    assert rewrite_answer(backend=same, prompt="Describe.", answer=answer, rejected_claims=["x"]) is None


def test_candidates_are_n_samples_per_prompt_with_the_same_settings():
    """Each prompt is sent n times with its image and the one temperature and top-p; answers come back grouped."""
    backend = OracleBackend(set(), outputs={"p1": "one", "p2": "two"})
    got = candidates_sample(
        backend=backend, prompts=["p1", "p2"], images=["i1", "i2"], n=3, max_new_tokens=8, temperature=0.7, top_p=0.9
    )
    assert got == [["one"] * 3, ["two"] * 3]
    assert backend.prompts == ["p1"] * 3 + ["p2"] * 3
    assert backend.generate_kwargs == [{"images": ["i1"] * 3 + ["i2"] * 3, "temperature": 0.7, "top_p": 0.9}]
    with pytest.raises(ValueError, match="positive temperature"):
        candidates_sample(backend=backend, prompts=["p1"], images=None, n=2, max_new_tokens=8, temperature=0)


def test_the_labeler_scores_completions_as_a_reward_source():
    """Scores in completion order: minus the number of rejected claims of each."""
    scene = scene_generate(seed=3)
    truth, wrong = scene_caption(scene), scene_hallucinated_caption(scene, rng=random.Random(3))[0]
    backend = OracleBackend({(3, question_from_claim(c.text)) for c in split_claims(truth)})
    scorer = LabelerScorer(backend=backend)
    scores = scorer(prompts=["Describe."] * 2, completions=[wrong, truth], images=[[3], [3]])
    assert scores[1] == 0.0 and scores[0] <= -1.0
    assert scorer.__name__ == "labeler:oracle"


def test_config_validation():
    """Unknown modes, scores and prompt versions are refused with the known values."""
    with pytest.raises(ValueError, match="divide must be one of"):
        LabelerConfig(divide="llm")
    with pytest.raises(ValueError, match="unknown labeler prompt version 'v9'; known: v1"):
        LabelerConfig(prompt_version="v9")
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        LabelerConfig(batch_size=0)


def test_the_pipeline_config_and_backend_interface_import_no_ml_framework():
    """The web process may validate a labeler job and read verdicts without loading torch or openai: only
    the backend modules import them."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys\n"
        "import annotation.labeler.pipeline, annotation.labeler.config, annotation.labeler.backends\n"
        "print(sorted(m for m in ('torch', 'transformers', 'openai', 'trl') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
