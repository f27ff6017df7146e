"""The rules that turn feedback into preference pairs and SFT rows (annotation/pairs.py)."""

import math
import statistics

import pytest

from annotation.formats.caption_contest import read_caption_contest_csv
from annotation.formats.convert import aggregates_from_record
from annotation.pairs import (
    AIScored,
    CorrectionInput,
    PairwiseVote,
    RankingInput,
    RatingAggregate,
    apply_segments,
    balance_lengths,
    changed_spans,
    diff_segments,
    pairs_from_ai_feedback,
    pairs_from_corrections,
    pairs_from_pairwise,
    pairs_from_rankings,
    pairs_from_ratings,
    sft_rows_from_ratings,
)
from tests.conftest import SHARED_DATA

CONTEST_660 = SHARED_DATA / "caption-contest" / "660_summary_KLUCB.first2000.csv"


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
    """Mean and precision computed from the counts equal the table's `score` and `precision` columns."""
    for aggregate in contest_660[:200]:
        assert aggregate.mean == pytest.approx(aggregate.meta["score"], rel=1e-9)
        assert aggregate.precision == pytest.approx(aggregate.meta["precision"], rel=1e-6)


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


def test_max_pairs_per_chosen_keeps_the_widest_margins(contest_660):
    """With a cap of 2, each chosen caption keeps its two largest-margin pairs."""
    sample = contest_660[::4]
    capped = list(pairs_from_ratings(sample, max_pairs_per_chosen=2))
    full = list(pairs_from_ratings(sample))
    per_chosen = {}
    for pair in full:
        per_chosen.setdefault(pair.chosen, []).append(pair.margin)
    for pair in capped:
        assert pair.margin >= sorted(per_chosen[pair.chosen], reverse=True)[:2][-1] - 1e-12
    assert len(capped) == sum(min(2, len(m)) for m in per_chosen.values())


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
    """A pair whose two answers are the same text is dropped by the balancing."""
    pairs = list(pairs_from_ai_feedback([scored("q", "same", 0), scored("q", "same ", 1)], length_balance=False))
    assert len(pairs) == 1
    assert balance_lengths(pairs) == []
