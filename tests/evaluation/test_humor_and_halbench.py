"""Humor win-rates and Bradley-Terry ratings; Object HalBench rates."""

import math
from pathlib import Path

import pytest

from evaluation.benchmarks.chair import CaptionInput, ObjectMatcher
from evaluation.benchmarks.humor import (
    Comparison,
    HumorConfig,
    bradley_terry,
    bradley_terry_ratings,
    comparisons_from_win_rate,
    elo,
    judge_pairs,
    pair_outcome,
    win_rate,
)
from evaluation.benchmarks.object_halbench import ObjectHalBenchConfig, object_halbench_score

SYNONYMS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chair" / "coco_synonyms.txt"


def test_order_swap_cancels_position_bias():
    """A judge that always picks the first caption gives every pair a tie: win-rate 0.5."""
    judgments = judge_pairs(["m1", "m2", "m3"], ["h1", "h2", "h3"], lambda first, second: "A")
    assert judgments == [("A", "A")] * 3
    result = win_rate(judgments)
    assert result.win_rate == 0.5 and result.ties == 3 and result.position_consistency == 0.0


def test_win_rate_hand_case():
    """Model wins both orders, loses both, splits: (1 + 0 + 0.5) / 3."""
    assert pair_outcome("A", "B") == 1.0 and pair_outcome("B", "A") == 0.0 and pair_outcome("tie", "B") == 0.75
    result = win_rate([("A", "B"), ("B", "A"), ("A", "A")])
    assert result.win_rate == pytest.approx(0.5) and (result.wins, result.losses, result.ties) == (1, 1, 1)
    assert result.position_consistency == pytest.approx(2 / 3)


def test_bradley_terry_two_players_closed_form():
    """Two players, 3 wins to 1: p_a / p_b = 3, so centred log-strengths are +-ln(3)/2."""
    comparisons = [Comparison("a", "b", "a")] * 3 + [Comparison("a", "b", "b")]
    strengths = bradley_terry(comparisons)
    assert strengths["a"] == pytest.approx(math.log(3) / 2, abs=1e-6)
    assert strengths["b"] == pytest.approx(-math.log(3) / 2, abs=1e-6)


def test_bradley_terry_ties_count_half():
    """One win each and two ties: equal strengths; two ties and one win: p_a / p_b = 2 / 1."""
    even = [
        Comparison("a", "b", "a"),
        Comparison("a", "b", "b"),
        Comparison("a", "b", "tie"),
        Comparison("a", "b", "tie"),
    ]
    assert bradley_terry(even) == pytest.approx({"a": 0.0, "b": 0.0}, abs=1e-6)
    ahead = bradley_terry([Comparison("a", "b", "a"), Comparison("a", "b", "tie"), Comparison("a", "b", "tie")])
    assert ahead["a"] - ahead["b"] == pytest.approx(math.log(2), abs=1e-6)


def test_bradley_terry_recovers_order_with_intervals():
    """Three players with a known order: ratings in that order, each inside its bootstrap interval."""
    comparisons = (
        [Comparison("model-a", "human", "a")] * 6 + [Comparison("model-a", "human", "b")] * 4
        + [Comparison("model-b", "human", "a")] * 2 + [Comparison("model-b", "human", "b")] * 8
        + [Comparison("model-a", "model-b", "a")] * 7 + [Comparison("model-a", "model-b", "tie")] * 2
        + [Comparison("model-a", "model-b", "b")]
    )  # fmt: skip
    ratings = bradley_terry_ratings(comparisons, HumorConfig(n_bootstrap=200, seed=3))
    assert [r.player for r in ratings] == ["model-a", "human", "model-b"]
    assert all(r.low <= r.strength <= r.high for r in ratings)
    assert ratings[0].high > ratings[0].low
    scores = elo(comparisons)
    assert scores["model-a"] > scores["model-b"]


def test_comparisons_from_judgments():
    """Each pair's two judgments become two model-vs-human comparisons."""
    out = comparisons_from_win_rate("m", [("A", "A"), ("B", "tie")])
    assert [c.winner for c in out] == ["a", "b", "b", "tie"]


def test_object_halbench_rates():
    """Response level: share of responses with a hallucinated object; mention level: share of mentions."""
    matcher = ObjectMatcher.from_file(SYNONYMS)
    responses = [
        CaptionInput(1, "A man walks his dog. The dog carries a frisbee. Another dog barks."),
        CaptionInput(2, "A cat on a couch."),
    ]
    truth = {1: {"person", "dog"}, 2: {"cat", "couch"}}
    result = object_halbench_score(responses, truth, matcher)
    assert result.response_rate == 0.5
    assert (result.n_mentions, result.n_hallucinated_mentions) == (7, 1)
    assert result.mention_rate == pytest.approx(1 / 7)
    unique = object_halbench_score(responses, truth, matcher, ObjectHalBenchConfig(unique_mentions=True))
    assert (unique.n_mentions, unique.mention_rate) == (5, pytest.approx(1 / 5))
