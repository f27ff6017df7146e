"""The rules that turn feedback into preference pairs and SFT rows (annotation/pair_rules.py)."""

import json
import math
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from annotation.formats.caption_contest import read_caption_contest_csv
from annotation.formats.convert import aggregates_from_record
from annotation.pair_rules import (
    HUMOR_SCALE,
    SELF_PAIR,
    AIScored,
    CorrectionInput,
    PairwiseVote,
    RankingInput,
    RatingAggregate,
    apply_segments,
    balance_lengths,
    changed_spans,
    diff_segments,
    length_balance_ratio,
    median_threshold,
    pairs_from_ai_feedback,
    pairs_from_corrections,
    pairs_from_pairwise,
    pairs_from_rankings,
    pairs_from_ratings,
    same_answer,
    sft_rows_from_ratings,
)
from tests.conftest import SHARED_DATA

CONTEST_660 = SHARED_DATA / "caption-contest" / "660_summary_KLUCB.first2000.csv"
CONTEST_691 = SHARED_DATA / "caption-contest" / "691_summary_KLUCB.first2000.csv"


def outside(text, spans):
    """The characters of `text` not covered by `spans`."""
    kept, cursor = [], 0
    for start, end in spans:
        kept.append(text[cursor:start])
        cursor = end
    kept.append(text[cursor:])
    return "".join(kept)


# --- changed spans ------------------------------------------------------------------------------------

EDITS = [
    ("A red cat sits on the mat.", "A blue cat sits on a mat."),
    ("There are two dogs and a ball.", "There is one dog and a ball."),
    ("A cat.", "A small cat."),
    ("A small black cat sleeps.", "A cat sleeps."),
    ("The sign says STOP.", "The sign says STOP."),
    ("", "Something new."),
    ("Two cars, one bus and a tree near the road", "Two cars near the road, and a bicycle"),
]


@pytest.mark.parametrize(("original", "corrected"), EDITS)
def test_changed_spans_cover_exactly_the_changed_text(original, corrected):
    """Outside the spans both texts are identical; every span holds text that was really changed."""
    original_spans, corrected_spans = changed_spans(original, corrected)
    assert outside(original, original_spans) == outside(corrected, corrected_spans)
    for start, end in original_spans + corrected_spans:
        assert start < end
    if original == corrected:
        assert original_spans == corrected_spans == []
    # No span could shrink and still leave the rest identical: its edge characters are real changes.
    assert sum(e - s for s, e in original_spans) <= len(original)


def test_changed_spans_of_a_word_swap_mark_only_the_words():
    """A replaced word is marked without the space before it, in both texts."""
    original, corrected = "A red cat sits on the mat.", "A blue cat sits on a mat."
    original_spans, corrected_spans = changed_spans(original, corrected)
    assert [original[s:e] for s, e in original_spans] == ["red", "the"]
    assert [corrected[s:e] for s, e in corrected_spans] == ["blue", "a"]


def test_diff_segments_applied_to_the_original_give_the_corrected_text():
    """The segments a diff finds turn the original into the corrected text, for every example."""
    for original, corrected in EDITS:
        assert apply_segments(original, diff_segments(original, corrected)) == corrected


# --- corrections --------------------------------------------------------------------------------------


def test_correction_gives_corrected_as_chosen_with_the_marked_segments_as_spans():
    """Chosen is the corrected answer, rejected the original; spans are the annotator's segments."""
    original = "A dog and two cats sit on a red sofa."
    red = original.index("red")
    segments = [(2, 5, "cat", "object"), (red, red + 3, "blue", "attribute")]
    correction = CorrectionInput("item-1", "Describe.", "a.png", original, None, segments, "ann")
    (pair,) = pairs_from_corrections([correction])
    assert pair.rejected == original
    assert pair.chosen == "A cat and two cats sit on a blue sofa."
    assert [pair.rejected[s:e] for s, e in pair.rejected_spans] == ["dog", "red"]
    assert [pair.chosen[s:e] for s, e in pair.chosen_spans] == ["cat", "blue"]
    assert pair.source == "correction"


def test_correction_edited_beyond_its_segments_takes_spans_from_the_diff():
    """When the corrected text is not the segments applied, the spans still cover exactly the changes."""
    original = "A dog sits on a red sofa."
    corrected = "A cat sits on a blue sofa near a window."
    correction = CorrectionInput("i", "Describe.", None, original, corrected, [(2, 5, "cat", "object")])
    (pair,) = pairs_from_corrections([correction])
    assert pair.chosen == corrected
    assert outside(pair.rejected, pair.rejected_spans) == outside(pair.chosen, pair.chosen_spans)
    assert any("near a window" in pair.chosen[s:e] for s, e in pair.chosen_spans)


def test_a_correction_that_changes_nothing_gives_no_pair():
    """ "No hallucination" (corrected text equal to the original) yields no pair."""
    correction = CorrectionInput("i", "p", None, "All correct.", "All correct.", [])
    assert list(pairs_from_corrections([correction])) == []


def test_overlapping_or_out_of_range_segments_are_refused():
    """Segments must lie inside the text and not overlap."""
    with pytest.raises(ValueError, match="outside"):
        list(pairs_from_corrections([CorrectionInput("i", "p", None, "short", None, [(0, 50, "x", "t")])]))
    with pytest.raises(ValueError, match="overlaps"):
        list(
            pairs_from_corrections(
                [CorrectionInput("i", "p", None, "a b c d", None, [(0, 3, "x", "t"), (2, 5, "y", "t")])]
            )
        )


# --- pairwise majority --------------------------------------------------------------------------------


def vote(choice, *, shown_reversed=False, annotator="", strength=1.0, item="q1"):
    """A vote on responses r1 ("one") and r2 ("two"); `choice` names the response shown first or second."""
    if shown_reversed:
        return PairwiseVote(item, "p", None, "two", "one", "r2", "r1", choice, strength, annotator)
    return PairwiseVote(item, "p", None, "one", "two", "r1", "r2", choice, strength, annotator)


def test_pairwise_majority_counts_votes_by_response_not_by_position():
    """Two of three annotators prefer r1 (one saw it second): r1 is chosen with agreement 2/3."""
    votes = [vote("a", annotator="x"), vote("b", shown_reversed=True, annotator="y"), vote("a", shown_reversed=True)]
    (pair,) = pairs_from_pairwise(votes)
    assert (pair.chosen, pair.rejected) == ("one", "two")
    assert pair.n_votes == 3
    assert pair.agreement == pytest.approx(2 / 3)
    assert pair.margin == pytest.approx((2 - 1) / 3)


def test_pairwise_tie_in_wins_gives_no_pair():
    """Equal wins (1–1, or only ties) give no pair."""
    assert list(pairs_from_pairwise([vote("a"), vote("b")])) == []
    assert list(pairs_from_pairwise([vote("tie"), vote("tie")])) == []


def test_pairwise_ties_count_as_votes_but_not_as_wins():
    """One win and one tie: a pair with agreement 1/2."""
    (pair,) = pairs_from_pairwise([vote("a"), vote("tie")])
    assert pair.chosen == "one"
    assert pair.agreement == pytest.approx(0.5)


def test_pairwise_mostly_both_bad_gives_no_pair():
    """When more than half the votes say both answers are bad, no pair is made even if one side won."""
    assert list(pairs_from_pairwise([vote("a"), vote("both_bad"), vote("both_bad")])) == []
    (pair,) = pairs_from_pairwise([vote("a"), vote("a"), vote("both_bad")])
    assert pair.chosen == "one"


def test_pairwise_groups_by_item():
    """Votes on different items are never pooled."""
    pairs = list(pairs_from_pairwise([vote("a", item="q1"), vote("b", item="q2")]))
    assert [(p.item_key, p.chosen) for p in pairs] == [("q1", "one"), ("q2", "two")]


def test_pairwise_vote_refuses_unknown_choice():
    """A choice outside a/b/tie/both_bad is refused."""
    with pytest.raises(ValueError):
        vote("left")


# --- ratings: the caption-contest rule ----------------------------------------------------------------


@pytest.fixture(scope="module")
def contest_660():
    (record,) = read_caption_contest_csv(CONTEST_660)
    return aggregates_from_record(record)


def test_mean_and_precision_match_the_contest_table(contest_660):
    """Mean and precision computed from the counts equal the table's `score` and `precision` columns, for
    every caption of the table."""
    assert len(contest_660) == 2000
    for aggregate in contest_660:
        assert aggregate.mean == pytest.approx(aggregate.meta["score"], rel=1e-9)
        assert aggregate.precision == pytest.approx(aggregate.meta["precision"], rel=1e-6)


def test_precision_matches_the_second_contest_wherever_its_counts_match_its_score():
    """Contest 691's table was written while votes still came in: where its `score` equals the mean of
    its counts (the rows written from the same counts), `precision` equals the computed one too."""
    (record,) = read_caption_contest_csv(CONTEST_691)
    consistent = [a for a in aggregates_from_record(record) if a.mean == pytest.approx(a.meta["score"], rel=1e-12)]
    assert len(consistent) > 1500
    for aggregate in consistent:
        assert aggregate.precision == pytest.approx(aggregate.meta["precision"], rel=1e-6)


@pytest.mark.parametrize("votes", [2, 3, 10, 200])
def test_unanimous_votes_get_the_dashboards_floor_not_zero(votes):
    """All votes in one level: the standard error is 1/√(n(n−1)), the floor of NEXT's `getModel`, not 0."""
    for level in HUMOR_SCALE:
        aggregate = RatingAggregate("c", "p", None, "t", {level: votes})
        assert aggregate.precision == pytest.approx(1 / math.sqrt(votes * (votes - 1)))


def test_one_vote_gets_half_the_scale_range_and_none_is_infinite():
    """One vote: R = (3 − 1)/2 = 1 on the humor scale, as the dashboards write it; no votes: infinite."""
    assert RatingAggregate("c", "p", None, "t", {"funny": 1}).precision == 1.0
    assert RatingAggregate("c", "p", None, "t", {}).precision == math.inf


def test_a_three_vote_unanimous_caption_does_not_win_the_margin_test():
    """Three votes all "unfunny" (or all "funny") are weak evidence: such a caption is neither rejected
    against a middling caption with many votes nor chosen over a good one."""
    middling = RatingAggregate("c", "p", None, "middling", {"unfunny": 100, "somewhat_funny": 40, "funny": 60})
    good = RatingAggregate("c", "p", None, "good", {"unfunny": 50, "somewhat_funny": 100, "funny": 50})
    unfunny3 = RatingAggregate("c", "p", None, "three unfunny", {"unfunny": 3})
    funny3 = RatingAggregate("c", "p", None, "three funny", {"funny": 3})
    assert list(pairs_from_ratings([middling, unfunny3], top_half_chosen=False)) == []
    assert list(pairs_from_ratings([funny3, good], top_half_chosen=False)) == []
    # Many unanimous votes are strong evidence again: 300 "unfunny" votes lose to the middling caption.
    unfunny300 = RatingAggregate("c", "p", None, "300 unfunny", {"unfunny": 300})
    (pair,) = pairs_from_ratings([middling, unfunny300])
    assert (pair.chosen, pair.rejected) == ("middling", "300 unfunny")


def test_humor_pairs_on_real_contest_data_follow_the_margin_rule(contest_660):
    """Every pair satisfies mean_c − mean_r > 3·√(prec_c² + prec_r²) with chosen from the top half, and
    every caption pair that satisfies it is present."""
    pairs = list(pairs_from_ratings(contest_660))
    stats = {a.text: (a.mean, a.precision) for a in contest_660}
    ranked = sorted(stats, key=lambda text: -stats[text][0])
    top_half = ranked[: math.ceil(len(ranked) / 2)]
    top_half_set = set(top_half)
    assert pairs, "contest 660 has caption pairs far enough apart"
    for pair in pairs:
        (mean_c, prec_c), (mean_r, prec_r) = stats[pair.chosen], stats[pair.rejected]
        assert pair.chosen in top_half_set
        assert pair.margin == pytest.approx(mean_c - mean_r)
        assert mean_c - mean_r > 3 * math.sqrt(prec_c**2 + prec_r**2)
    expected = set()
    for i, chosen in enumerate(top_half):
        mean_c, prec_c = stats[chosen]
        for rejected in ranked[i + 1 :]:
            mean_r, prec_r = stats[rejected]
            if mean_c - mean_r > 3 * math.sqrt(prec_c**2 + prec_r**2):
                expected.add((chosen, rejected))
    assert {(p.chosen, p.rejected) for p in pairs} == expected


def test_a_larger_z_keeps_fewer_pairs(contest_660):
    """Asking for more certainty (z) never adds pairs."""
    sample = contest_660[::5]
    loose = {(p.chosen, p.rejected) for p in pairs_from_ratings(sample, z=1.0)}
    strict = {(p.chosen, p.rejected) for p in pairs_from_ratings(sample, z=3.0)}
    assert strict < loose


def _pair_keys(pairs):
    return [(p.item_key, p.chosen, p.rejected) for p in pairs]


def test_a_capped_chosen_caption_draws_its_rejected_among_every_caption_it_beats(contest_660):
    """With a cap of 2, each chosen caption keeps two of the pairs the margin rule allows (all if fewer),
    and which two depends on the seed: they are drawn, not the two lowest-ranked."""
    sample = contest_660[::4]
    full = _pair_keys(pairs_from_ratings(sample))
    allowed: dict[str, list] = {}
    for key in full:
        allowed.setdefault(key[1], []).append(key)
    by_seed = [_pair_keys(pairs_from_ratings(sample, max_pairs_per_chosen=2, seed=seed)) for seed in range(4)]
    for capped in by_seed:
        assert set(capped) <= set(full)
        assert len(capped) == len(set(capped)) == sum(min(2, len(keys)) for keys in allowed.values())
    assert len({tuple(capped) for capped in by_seed}) == 4
    lowest_two = {key for keys in allowed.values() for key in keys[-2:]}
    assert not set(by_seed[0]) <= lowest_two
    assert by_seed[1] == _pair_keys(pairs_from_ratings(sample, max_pairs_per_chosen=2, seed=1))


def _spread_item(item_key, n_below=10):
    """One clearly good caption and `n_below` clearly worse ones, each far enough below to pair with it."""
    best = RatingAggregate(item_key, "p", None, "best", {"funny": 200}, response_key="0")
    below = [
        RatingAggregate(item_key, "p", None, f"worse {k}", {"unfunny": 100 + 10 * k, "somewhat_funny": 10},
                        response_key=str(k + 1))
        for k in range(n_below)
    ]  # fmt: skip
    return [best, *below]


def test_uniform_draws_reach_every_candidate_and_favour_none():
    """Over many items, each of the ten captions below the chosen one is drawn about equally often."""
    drawn = Counter()
    for index in range(300):
        for pair in pairs_from_ratings(_spread_item(f"item-{index}"), top_half_chosen=False, max_pairs_per_chosen=2):
            if pair.chosen == "best":
                drawn[pair.rejected] += 1
    assert set(drawn) == {f"worse {k}" for k in range(10)}
    assert max(drawn.values()) < 2 * min(drawn.values())


def test_stratified_draws_take_one_caption_from_each_rank_band():
    """With a cap of 2 over ten candidates in rank order, one rejected caption comes from the five nearer the
    chosen one and one from the five farther, whatever the seed."""
    for seed in range(20):
        pairs = [
            p
            for p in pairs_from_ratings(_spread_item("i"), top_half_chosen=False, max_pairs_per_chosen=2,
                                        draw="stratified", seed=seed)
            if p.chosen == "best"
        ]  # fmt: skip
        ranks = sorted(int(p.meta["rejected_response"]) for p in pairs)
        assert len(ranks) == 2 and ranks[0] <= 5 < ranks[1]
    with pytest.raises(ValueError, match="draw must be one of"):
        list(pairs_from_ratings(_spread_item("i"), draw="lowest"))


def test_an_items_draws_depend_only_on_its_key_and_the_seed(contest_660):
    """Adding another item changes nothing for the first, and a fresh interpreter with another hash seed
    (Python's `hash()` of a string differs per process) draws the same pairs."""
    alone = _pair_keys(pairs_from_ratings(_spread_item("cartoon-a"), max_pairs_per_chosen=2))
    together = _pair_keys(pairs_from_ratings(_spread_item("other") + _spread_item("cartoon-a"), max_pairs_per_chosen=2))
    assert alone == [key for key in together if key[0] == "cartoon-a"]
    here = _pair_keys(pairs_from_ratings(contest_660[::4], max_pairs_per_chosen=2))
    code = (
        "import json, sys\n"
        "from annotation.formats.caption_contest import read_caption_contest_csv\n"
        "from annotation.formats.convert import aggregates_from_record\n"
        "from annotation.pair_rules import pairs_from_ratings\n"
        "(record,) = read_caption_contest_csv(sys.argv[1])\n"
        "pairs = pairs_from_ratings(aggregates_from_record(record)[::4], max_pairs_per_chosen=2)\n"
        "print(json.dumps([(p.item_key, p.chosen, p.rejected) for p in pairs]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(CONTEST_660)], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    assert [tuple(key) for key in json.loads(out.stdout)] == here


@pytest.mark.parametrize("path", [CONTEST_660, CONTEST_691], ids=["660", "691"])
@pytest.mark.parametrize("draw", ["uniform", "stratified"])
def test_rejected_captions_are_diverse_on_the_real_contests(path, draw):
    """On a whole real contest with the platform's cap of 5 pairs per chosen caption, the rejected side is
    spread over many captions: distinct rejected captions are at least 40% of the pairs and no caption is
    the rejected one of more than 15% of them. (Taking the lowest-ranked first gave 12 and 6 distinct
    rejected captions, one of them in 19% and 27% of the pairs.)"""
    (record,) = read_caption_contest_csv(path)
    pairs = list(pairs_from_ratings(aggregates_from_record(record), max_pairs_per_chosen=5, draw=draw))
    rejected = Counter(p.rejected for p in pairs)
    assert len(pairs) > 400
    assert len(rejected) >= 0.4 * len(pairs)
    assert max(rejected.values()) <= 0.15 * len(pairs)
    assert all(count <= 5 for count in Counter(p.chosen for p in pairs).values())


def test_ratings_of_different_items_are_not_paired():
    """Captions of two cartoons are never compared with each other."""
    funny = {"funny": 90, "somewhat_funny": 5, "unfunny": 5}
    dull = {"funny": 5, "somewhat_funny": 5, "unfunny": 90}
    aggregates = [
        RatingAggregate("c1", "p", None, "good one", funny),
        RatingAggregate("c2", "p", None, "bad one", dull),
    ]
    assert list(pairs_from_ratings(aggregates)) == []
    aggregates.append(RatingAggregate("c1", "p", None, "bad of c1", dull))
    (pair,) = pairs_from_ratings(aggregates)
    assert (pair.item_key, pair.chosen, pair.rejected) == ("c1", "good one", "bad of c1")


def test_sft_rows_carry_good_and_bad_control_tokens_by_threshold(contest_660):
    """Captions with mean ≥ threshold get `[GOOD] `, the others `[BAD] `, as SciCap's captions do."""
    threshold = statistics.median(a.mean for a in contest_660)
    rows = list(sft_rows_from_ratings(contest_660, threshold=threshold))
    assert len(rows) == len(contest_660)
    for row, aggregate in zip(rows, contest_660, strict=True):
        token = "[GOOD] " if aggregate.mean >= threshold else "[BAD] "
        assert row.completion == token + aggregate.text
    labels = {row.label for row in rows}
    assert labels == {"good", "bad"}


def test_rating_aggregate_refuses_levels_off_the_scale():
    """Counts for a level the scale does not have are refused."""
    with pytest.raises(ValueError):
        RatingAggregate("c", "p", None, "t", {"hilarious": 3})


# --- rankings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5])
def test_ranking_gives_every_implied_pair(n):
    """A ranking of n responses gives n(n−1)/2 pairs, each with the better-ranked one chosen."""
    texts = [f"answer {i}" for i in range(n)]
    pairs = list(pairs_from_rankings([RankingInput("q", "p", None, texts)]))
    assert len(pairs) == n * (n - 1) // 2
    for pair in pairs:
        assert texts.index(pair.chosen) < texts.index(pair.rejected)
        assert pair.margin == texts.index(pair.rejected) - texts.index(pair.chosen)
    assert len({(p.chosen, p.rejected) for p in pairs}) == len(pairs)


# --- AI feedback (RLAIF-V) ----------------------------------------------------------------------------


def scored(item, text, n_rejected, n_claims=5):
    return AIScored(item, "Describe.", None, text, None, n_claims, n_rejected)


def test_ai_score_is_minus_rejected_claims_and_needs_a_gap_of_one():
    """Score = −#rejected claims; responses with equal scores are never paired."""
    responses = [scored("q", "alpha beta gamma", 0), scored("q", "alpha beta delta", 0), scored("q", "alpha x y", 2)]
    pairs = list(pairs_from_ai_feedback(responses, length_balance=False, max_pairs_per_prompt=10))
    assert {(p.chosen, p.rejected) for p in pairs} == {
        ("alpha beta gamma", "alpha x y"),
        ("alpha beta delta", "alpha x y"),
    }
    assert all(p.margin == 2 for p in pairs)


def test_ai_pairs_are_at_most_two_per_prompt():
    """Six responses with distinct scores give 15 candidate pairs, but at most 2 are kept per prompt."""
    responses = [scored(item, f"{item} answer number {k}", k) for item in ("q1", "q2") for k in range(6)]
    pairs = list(pairs_from_ai_feedback(responses, length_balance=False))
    for item in ("q1", "q2"):
        assert len([p for p in pairs if p.item_key == item]) == 2
    again = list(pairs_from_ai_feedback(responses, length_balance=False))
    assert [(p.chosen, p.rejected) for p in pairs] == [(p.chosen, p.rejected) for p in again]


def test_length_balancing_stops_chosen_answers_being_simply_shorter():
    """Where chosen answers are mostly much shorter, balancing drops those pairs and brings the mean
    lengths of chosen and rejected closer."""
    long_text = " ".join(["word"] * 40)
    responses = []
    for i in range(10):
        responses.append(scored(f"short{i}", "a short answer", 0))
        responses.append(scored(f"short{i}", long_text + f" {i}", 3))
    for i in range(4):
        responses.append(scored(f"long{i}", long_text + f" good {i}", 0))
        responses.append(scored(f"long{i}", long_text + f" bad {i}", 2))

    def gap(pairs):
        chosen = statistics.mean(len(p.chosen.split()) for p in pairs)
        rejected = statistics.mean(len(p.rejected.split()) for p in pairs)
        return abs(chosen - rejected) / rejected

    raw = list(pairs_from_ai_feedback(responses, length_balance=False))
    balanced = list(pairs_from_ai_feedback(responses))
    assert len(balanced) < len(raw)
    assert gap(balanced) < gap(raw)
    assert all(p.chosen != "a short answer" for p in balanced)


def test_balance_lengths_drops_identical_answers():
    """A pair whose two answers are the same text is dropped by the balancing (RLAIF-V's filter does)."""
    pair = next(iter(pairs_from_ai_feedback([scored("q", "one answer", 0), scored("q", "another", 1)])))
    pair.rejected = " one answer"
    assert balance_lengths([pair]) == []


def _rlaif_v_filter_shorten(pairs):
    """RLAIF-V's `utils/get_pairs_filter_shorten.py`, transcribed: the oracle for `balance_lengths`."""

    def kept_at(ratio):
        kept = []
        for pair in pairs:
            chosen_len, reject_len = len(pair.chosen.split()), len(pair.rejected.split())
            if (reject_len - chosen_len) / float(reject_len) > ratio or pair.chosen.strip() == pair.rejected.strip():
                continue
            kept.append(pair)
        return kept

    def gap(kept):
        win = sum(len(p.chosen.split()) for p in kept) / len(kept)
        lose = sum(len(p.rejected.split()) for p in kept) / len(kept)
        return abs(win - lose) / lose

    ratios = [round(0.02 * k, 10) for k in range(50)]
    best = min(ratios, key=lambda r: (gap(kept_at(r)), ratios.index(r)))
    return kept_at(best)


def test_balance_lengths_keeps_the_pairs_rlaif_vs_filter_keeps():
    """On pairs of random lengths biased towards shorter chosen answers, the balancing keeps exactly the
    pairs RLAIF-V's own filter keeps, and brings the mean lengths closer."""
    import random

    rng = random.Random(7)
    responses = []
    for i in range(200):
        rejected_len = rng.randint(5, 60)
        chosen_len = max(1, int(rejected_len * rng.uniform(0.2, 1.3)))
        responses += [scored(f"q{i}", "good " * chosen_len + str(i), 0), scored(f"q{i}", "bad " * rejected_len, 2)]
    pairs = list(pairs_from_ai_feedback(responses, length_balance=False))
    expected = _rlaif_v_filter_shorten(pairs)
    assert 0 < len(expected) < len(pairs)
    assert balance_lengths(pairs) == expected
    ratio = length_balance_ratio([(p.chosen, p.rejected) for p in pairs])
    assert ratio is not None and 0 <= ratio < 1


# --- self-pairs: the same answer on both sides ----------------------------------------------------------


def test_same_answer_ignores_whitespace_only():
    """Leading, trailing and inner whitespace do not make two answers different; any other character does."""
    assert same_answer("A cat.", "  A cat.\n")
    assert same_answer("A  cat\tsits.", "A cat sits.")
    assert not same_answer("A cat.", "A cat!")
    assert not same_answer("A cat.", "a cat.")


def test_no_rule_pairs_an_answer_with_itself_and_each_counts_what_it_dropped():
    """Pairwise, ranking, rating, AI and correction feedback over two copies of one answer (up to whitespace)
    give no pair, and each rule counts the pair it left out; a real pair beside it is kept."""
    dropped = Counter()
    votes = [
        PairwiseVote("q", "p", None, "Same answer.", " Same  answer.", "r1", "r2", "a"),
        PairwiseVote("q", "p", None, "Same answer.", "Other answer.", "r1", "r3", "a"),
    ]
    assert [(p.chosen, p.rejected) for p in pairs_from_pairwise(votes, dropped=dropped)] == [
        ("Same answer.", "Other answer.")
    ]
    assert dropped[SELF_PAIR] == 1

    ranking = RankingInput("q", "p", None, ["first", "first ", "last"])
    assert [(p.chosen, p.rejected) for p in pairs_from_rankings([ranking], dropped=dropped)] == [
        ("first", "last"),
        ("first ", "last"),
    ]
    assert dropped[SELF_PAIR] == 2

    funny = {"funny": 90, "somewhat_funny": 5, "unfunny": 5}
    dull = {"funny": 5, "somewhat_funny": 5, "unfunny": 90}
    captions = [
        RatingAggregate("c", "p", None, "A caption.", funny, response_key="1"),
        RatingAggregate("c", "p", None, "A caption. ", dull, response_key="2"),
        RatingAggregate("c", "p", None, "Another caption.", dull, response_key="3"),
    ]
    assert [(p.chosen, p.rejected) for p in pairs_from_ratings(captions, dropped=dropped)] == [
        ("A caption.", "Another caption.")
    ]
    assert dropped[SELF_PAIR] == 3

    ai = [scored("q", "An answer.", 0), scored("q", "An answer.", 2), scored("q", "A wrong answer.", 3)]
    ai_pairs = list(pairs_from_ai_feedback(ai, max_pairs_per_prompt=5, length_balance=False, dropped=dropped))
    assert all(not same_answer(p.chosen, p.rejected) for p in ai_pairs) and len(ai_pairs) == 2
    assert dropped[SELF_PAIR] == 4

    corrections = [
        CorrectionInput("i", "p", None, "A red cup.", "A red  cup. ", []),
        CorrectionInput("i", "p", None, "A red cup.", "A red cup.", []),
        CorrectionInput("i", "p", None, "A red cup.", "A blue cup.", []),
    ]
    assert [p.chosen for p in pairs_from_corrections(corrections, dropped=dropped)] == ["A blue cup."]
    assert dropped[SELF_PAIR] == 6


def test_a_self_pair_does_not_use_up_a_prompts_ai_pair_quota():
    """Identical answers are left out before the two pairs per prompt are drawn, so two real pairs remain."""
    responses = [scored("q", "Same.", 0), scored("q", "Same.", 3), scored("q", "Worse one.", 2), scored("q", "x y", 4)]
    for seed in range(10):
        pairs = list(pairs_from_ai_feedback(responses, length_balance=False, seed=seed))
        assert len(pairs) == 2 and all(p.chosen != p.rejected for p in pairs)


# --- SciCap's threshold ------------------------------------------------------------------------------------


def test_the_scicap_threshold_is_the_median_and_a_mean_at_it_is_good():
    """Means 1, 2, 2, 2, 3 have median 2: the three captions at the median are `[GOOD]`, as FigCapsHF's
    `np.digitize(scores, [median])` puts them in the upper level; unrated captions do not count."""
    counts = [{"unfunny": 4}, {"somewhat_funny": 4}, {"somewhat_funny": 2}, {"unfunny": 1, "funny": 1}, {"funny": 4}]
    aggregates = [RatingAggregate("c", "p", None, f"caption {k}", c) for k, c in enumerate(counts)]
    aggregates.append(RatingAggregate("c", "p", None, "unrated", {}))
    assert median_threshold(aggregates) == 2.0
    rows = list(sft_rows_from_ratings(aggregates, threshold=median_threshold(aggregates)))
    assert [row.label for row in rows] == ["bad", "good", "good", "good", "good"]
    assert median_threshold(aggregates[1:4] + aggregates[:1]) == 2.0
    assert median_threshold([aggregates[0], aggregates[4]]) == 2.0  # interpolated, as np.percentile(…, 50)
    with pytest.raises(ValueError, match="no rated responses"):
        median_threshold([aggregates[-1]])
