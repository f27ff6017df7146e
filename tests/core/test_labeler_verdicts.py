"""RLAIF-V's claim rule and the answer scores, on hand-made logits, logprobs and answers."""

import math

import pytest
import torch

from annotation.labeler.backends.local import yes_no_masses
from annotation.labeler.verdicts import (
    YesNoVerdict,
    answer_score,
    verdict_from_text,
    verdict_from_top_logprobs,
)

# A vocabulary of 6 tokens: 0 "yes", 1 "Yes", 2 "no", 3 "No", 4 "the", 5 "maybe".
YES_IDS, NO_IDS = [0, 1], [2, 3]


def test_the_rule_sums_both_cases_of_yes_against_both_cases_of_no():
    """Row 0: "no" is the single likeliest token, yet "yes"+"Yes" outweighs "no"+"No": accepted. Row 1: the
    mirror image: rejected. The masses are softmax probabilities over the whole vocabulary."""
    logits = torch.log(
        torch.tensor(
            [
                [0.20, 0.20, 0.30, 0.05, 0.15, 0.10],
                [0.30, 0.05, 0.20, 0.20, 0.15, 0.10],
            ]
        )
    )
    p_yes, p_no = yes_no_masses(logits, yes_ids=YES_IDS, no_ids=NO_IDS)
    torch.testing.assert_close(p_yes, torch.tensor([0.40, 0.35]))
    torch.testing.assert_close(p_no, torch.tensor([0.35, 0.40]))
    verdicts = [
        YesNoVerdict(p_yes=y, p_no=n, source="logits") for y, n in zip(p_yes.tolist(), p_no.tolist(), strict=True)
    ]
    assert [v.accepted for v in verdicts] == [True, False]
    assert verdicts[0].p_yes_normalized == pytest.approx(0.40 / 0.75)


def test_bf16_logits_are_read_in_fp32():
    """Half-precision logits give the same masses as their fp32 values (softmax in fp32)."""
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 3.0, 0.0]])
    expected = yes_no_masses(logits.bfloat16().float(), yes_ids=YES_IDS, no_ids=NO_IDS)
    got = yes_no_masses(logits.bfloat16(), yes_ids=YES_IDS, no_ids=NO_IDS)
    assert got[0].dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_a_tie_rejects_the_claim():
    """P(yes) must be strictly greater: a labeler that cannot decide does not vouch for the claim."""
    assert YesNoVerdict(p_yes=0.3, p_no=0.3, source="logits").accepted is False
    assert YesNoVerdict(p_yes=0.0, p_no=0.0, source="logprobs").p_yes_normalized == 0.5


def test_answer_scores():
    """ "rejected" is minus the number of rejected claims; "mean_log_p_yes" the mean log of normalized P(yes)."""
    verdicts = [
        YesNoVerdict(p_yes=0.9, p_no=0.1, source="logits"),
        YesNoVerdict(p_yes=0.2, p_no=0.6, source="logits"),
        YesNoVerdict(p_yes=0.1, p_no=0.3, source="logits"),
    ]
    assert answer_score(verdicts) == -2.0
    assert answer_score(verdicts, method="mean_log_p_yes") == pytest.approx(
        (math.log(0.9) + math.log(0.25) + math.log(0.25)) / 3
    )
    assert answer_score([], method="mean_log_p_yes") == 0.0
    with pytest.raises(ValueError, match="score must be one of"):
        answer_score(verdicts, method="best")


def test_top_logprobs_add_up_every_spelling_of_yes_and_no():
    """Server tokens with space markers or pieces that open the word count; other tokens do not."""
    top = [
        (" Yes", math.log(0.3)),
        ("yes", math.log(0.1)),
        ("Ġno", math.log(0.25)),
        ("N", math.log(0.05)),
        ("The", math.log(0.2)),
        ("▁y", math.log(0.02)),
    ]
    verdict = verdict_from_top_logprobs(top)
    assert verdict.source == "logprobs"
    assert verdict.p_yes == pytest.approx(0.42)
    assert verdict.p_no == pytest.approx(0.30)
    assert verdict_from_top_logprobs([("The", -0.1), ("A", -2.0)]) is None


def test_an_answers_text_gives_a_parsed_verdict_or_none():
    """The first word decides; an answer that is neither yes nor no is no verdict."""
    assert verdict_from_text("Yes, there is.") == YesNoVerdict(
        p_yes=1.0, p_no=0.0, source="parsed", answer="Yes, there is."
    )
    assert verdict_from_text(" no").accepted is False
    assert verdict_from_text("Maybe") is None
    assert verdict_from_text("") is None
