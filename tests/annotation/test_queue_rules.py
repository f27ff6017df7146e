"""The queue's pure rules and the correction segment checks (plain Python, no database)."""

import random

import pytest

from annotation import assignment as rules
from annotation.segments import SegmentError, correction_check


def test_tasks_are_items_for_comparisons_and_responses_for_single_answers():
    assert [rules.task_unit(kind) for kind in ("pairwise", "ranking", "correction", "rating")] == [
        "item",
        "item",
        "response",
        "response",
    ]
    with pytest.raises(ValueError, match="unknown project kind"):
        rules.task_unit("poll")


def test_pairwise_shows_two_of_the_answers_in_both_orders_over_many_draws():
    rng = random.Random(0)
    shown = {
        tuple(rules.shown_order(kind="pairwise", response_ids=[1, 2, 3], unit_response_id=None, rng=rng))
        for _ in range(200)
    }
    assert all(len(pair) == 2 and len(set(pair)) == 2 for pair in shown)
    assert (1, 2) in shown and (2, 1) in shown and len(shown) == 6


def test_ranking_shows_every_answer_and_single_answer_kinds_show_their_own():
    order = rules.shown_order(kind="ranking", response_ids=[4, 5, 6, 7], unit_response_id=None, rng=random.Random(1))
    assert sorted(order) == [4, 5, 6, 7]
    assert rules.shown_order(kind="rating", response_ids=[9], unit_response_id=9, rng=random.Random(1)) == [9]


@pytest.mark.parametrize(
    ("total", "finished", "unfinished_not_yours", "quota_left", "reason"),
    [
        (0, 0, False, None, "no_tasks"),
        (5, 5, False, None, "all_done"),
        (5, 3, True, None, "wait"),
        (5, 3, False, None, "done_for_you"),
        (5, 0, True, 0, "quota"),
    ],
)
def test_an_empty_queue_says_why(total, finished, unfinished_not_yours, quota_left, reason):
    got = rules.empty_reason(
        total=total, finished=finished, unfinished_not_yours=unfinished_not_yours, quota_left=quota_left
    )
    assert got == reason
    assert rules.empty_message(got, quota=7)


def test_scales_and_answers_are_checked():
    assert rules.scale_check([" unfunny", "funny "], what="rating levels") == ["unfunny", "funny"]
    for bad in (["one"], ["a", "a"], ["a", ""], [str(i) for i in range(10)]):
        with pytest.raises(ValueError):
            rules.scale_check(bad, what="rating levels")
    assert rules.ranking_order(order=[3, 1, 2], shown=[1, 2, 3]) == [3, 1, 2]
    with pytest.raises(ValueError):
        rules.ranking_order(order=[1, 1, 2], shown=[1, 2, 3])
    with pytest.raises(ValueError):
        rules.rating_level(level=True, levels=["a", "b"])
    assert rules.time_spent(-5) == 0 and rules.time_spent(10**12) == rules.MAX_TIME_SPENT_MS


def test_segments_give_the_corrected_text_and_may_touch_but_not_overlap():
    text = "a red big cube"
    checked = correction_check(
        text=text,
        segments=[
            {"start": 6, "end": 9, "type": "attribute", "replacement": "small", "original": "big"},
            {"start": 2, "end": 5, "type": "attribute", "replacement": "blue", "original": "red"},
            {"start": 5, "end": 6, "type": "other", "replacement": "", "original": " "},
        ],
        types=["attribute", "other"],
    )
    assert checked.corrected_text == "a bluesmall cube"
    assert [s["start"] for s in checked.segments] == [2, 5, 6]
    with pytest.raises(SegmentError, match="overlap") as refused:
        correction_check(
            text=text,
            segments=[
                {"start": 2, "end": 9, "type": "other", "replacement": "x", "original": "red big"},
                {"start": 6, "end": 9, "type": "other", "replacement": "y", "original": "big"},
            ],
            types=["other"],
        )
    assert refused.value.index == 1
    assert correction_check(text=text, segments=[], types=["other"]).no_hallucination
