"""Preference pairs derived from every kind of stored feedback (annotation/services/preference_pairs.py)."""

import pytest

from annotation import services
from annotation.models import AIFeedback, Item, PreferencePair
from annotation.services.preference_pairs import ai_answer_score
from loupe.errors import ApplicationError
from tests.annotation.feedback import correct, judge, people, project_with_items, rank, rate, responses_of

pytestmark = pytest.mark.django_db


def _pairs(project, source):
    return list(PreferencePair.objects.filter(project=project, source=source).order_by("id"))


def test_pairwise_majority_keeps_agreement_and_vote_count(researcher):
    """Two of three annotators prefer the true caption: one pair for it, agreement 2/3 over 3 votes."""
    project = project_with_items("pw", "pairwise", {"i1": ["a red circle", "a blue circle"]}, created_by=researcher)
    good, bad = responses_of(project, "i1")
    a, b, c = people("judge", 3)
    judge(good, bad, a, "a")
    judge(bad, good, b, "b")  # shown the other way round, same preference
    judge(good, bad, c, "b")
    services.preference_pairs_refresh(item=good.item)
    (pair,) = _pairs(project, "pairwise")
    assert (pair.chosen_text, pair.rejected_text) == ("a red circle", "a blue circle")
    assert (pair.chosen_response_id, pair.rejected_response_id) == (good.pk, bad.pk)
    assert pair.n_votes == 3 and pair.agreement == pytest.approx(2 / 3)


def test_a_pairwise_tie_or_a_both_bad_majority_gives_no_pair(researcher):
    """Equal wins, or a majority saying both answers are bad, leave the item without a pair."""
    project = project_with_items(
        "pw", "pairwise", {"tie": ["x one", "y two"], "bad": ["x", "y"]}, created_by=researcher
    )
    a, b, c = people("judge", 3)
    x, y = responses_of(project, "tie")
    judge(x, y, a, "a")
    judge(x, y, b, "b")
    p, q = responses_of(project, "bad")
    judge(p, q, a, "a")
    judge(p, q, b, "both_bad")
    judge(p, q, c, "both_bad")
    services.preference_pairs_refresh_project(project=project)
    assert PreferencePair.objects.filter(project=project).count() == 0


def test_a_correction_becomes_corrected_over_original_with_changed_spans(researcher, annotator):
    """Chosen is the corrected text, rejected the original; the spans mark exactly the replaced words."""
    original = "A red square next to two circles."
    project = project_with_items("cor", "correction", {"i1": [original]}, created_by=researcher)
    (response,) = responses_of(project, "i1")
    segments = [
        {"start": 2, "end": 5, "replacement": "blue", "type": "attribute"},
        {"start": 21, "end": 24, "replacement": "three", "type": "count"},
    ]
    correct(response, annotator, segments, "A blue square next to three circles.")
    services.preference_pairs_refresh(item=response.item)
    (pair,) = _pairs(project, "correction")
    assert pair.chosen_text == "A blue square next to three circles." and pair.rejected_text == original
    assert [original[s:e] for s, e in pair.rejected_spans] == ["red", "two"]
    assert [pair.chosen_text[s:e] for s, e in pair.chosen_spans] == ["blue", "three"]
    assert pair.rejected_response_id == response.pk and pair.chosen_response_id is None


def test_a_correction_without_changes_gives_no_pair(researcher, annotator):
    """ "No hallucination" (no segments, same text) is not a preference."""
    project = project_with_items("cor", "correction", {"i1": ["All good."]}, created_by=researcher)
    (response,) = responses_of(project, "i1")
    correct(response, annotator, [], "All good.")
    services.preference_pairs_refresh(item=response.item)
    assert not PreferencePair.objects.exists()


def test_ratings_pair_captions_whose_means_differ_beyond_their_uncertainty(researcher):
    """Individual ratings aggregate per caption; a clear gap gives a pair (margin = mean gap), noise does not."""
    project = project_with_items(
        "rate", "rating", {"cartoon": ["funny one", "dull one", "also dull"]}, created_by=researcher
    )
    funny, dull, also_dull = responses_of(project, "cartoon")
    raters = people("rater", 60)
    for rater in raters[:20]:
        rate(funny, rater, 2)  # funny
    for index, rater in enumerate(raters[20:40]):
        rate(dull, rater, index % 2)  # unfunny / somewhat funny
    for index, rater in enumerate(raters[40:]):
        rate(also_dull, rater, (index + 1) % 2)
    services.preference_pairs_refresh(item=funny.item)
    pairs = _pairs(project, "rating")
    assert {(p.chosen_text, p.rejected_text) for p in pairs} == {("funny one", "dull one"), ("funny one", "also dull")}
    for pair in pairs:
        assert pair.margin == pytest.approx(3.0 - 1.5)
        assert pair.n_votes == 40


def test_imported_rating_counts_and_individual_ratings_add_up(researcher):
    """Counts an import stored on the response count together with ratings made in Loupe."""
    project = project_with_items("rate", "rating", {"cartoon": ["good", "meh"]}, created_by=researcher)
    good, meh = responses_of(project, "cartoon")
    good.meta = {"rating_counts": {"funny": 30, "somewhat funny": 5, "unfunny": 5}}
    good.save()
    meh.meta = {"rating_counts": {"funny": 10, "somewhat funny": 10, "unfunny": 10}}
    meh.save()
    (rater,) = people("rater", 1)
    rate(meh, rater, 0)
    services.preference_pairs_refresh(item=good.item)
    (pair,) = _pairs(project, "rating")
    assert (pair.chosen_text, pair.rejected_text) == ("good", "meh")
    assert pair.n_votes == 40 + 31
    assert pair.margin == pytest.approx((30 * 3 + 5 * 2 + 5) / 40 - (10 * 3 + 10 * 2 + 11) / 31)


def test_a_ranking_implies_every_pair(researcher, annotator):
    """Three responses ranked best first give the three pairs the order implies, margin = rank distance."""
    project = project_with_items("rank", "ranking", {"i1": ["first", "second", "third"]}, created_by=researcher)
    first, second, third = responses_of(project, "i1")
    rank([second, first, third], annotator)
    services.preference_pairs_refresh(item=first.item)
    pairs = {(p.chosen_text, p.rejected_text): p.margin for p in _pairs(project, "ranking")}
    assert pairs == {("second", "first"): 1.0, ("second", "third"): 2.0, ("first", "third"): 1.0}


def test_ai_feedback_makes_pairs_by_score_gap_and_replaces_an_earlier_verdict(researcher):
    """The labeler's rejected claims score answers; a gap of at least one gives a pair, chosen = fewer rejected."""
    project = project_with_items("ai", "pairwise", {"i1": ["clean", "one slip", "two slips"]}, created_by=researcher)
    clean, one, two = responses_of(project, "i1")
    claims = ["c1", "c2", "c3"]
    services.ai_feedback_record(response=clean, labeler_model="tiny-vlm", claims=claims, p_yes=[0.9, 0.8, 0.7])
    services.ai_feedback_record(response=one, labeler_model="tiny-vlm", claims=claims, p_yes=[0.9, 0.2, 0.7])
    services.ai_feedback_record(response=two, labeler_model="tiny-vlm", claims=claims, p_yes=[0.1, 0.2, 0.7])
    assert AIFeedback.objects.get(response=two).score == -2.0
    pairs = _pairs(project, "ai")
    assert len(pairs) == 2  # at most two pairs per prompt
    scores = {"clean": 0, "one slip": -1, "two slips": -2}
    for pair in pairs:
        assert scores[pair.chosen_text] - scores[pair.rejected_text] == pair.margin >= 1
    # The labeler looks again and now accepts every claim of "two slips": no pair may prefer over it by 2.
    services.ai_feedback_record(response=two, labeler_model="tiny-vlm", claims=claims, p_yes=[0.9, 0.9, 0.9])
    assert AIFeedback.objects.filter(response=two).count() == 1
    for pair in _pairs(project, "ai"):
        assert pair.rejected_text == "one slip"


def test_ai_feedback_is_checked(researcher):
    """Mismatched claim and probability lists, or probabilities outside [0, 1], are refused."""
    project = project_with_items("ai", "pairwise", {"i1": ["x", "y"]}, created_by=researcher)
    x, _ = responses_of(project, "i1")
    with pytest.raises(ApplicationError, match="one entry per claim"):
        services.ai_feedback_record(response=x, labeler_model="m", claims=["a", "b"], p_yes=[0.5])
    with pytest.raises(ApplicationError, match="between 0 and 1"):
        services.ai_feedback_record(response=x, labeler_model="m", claims=["a"], p_yes=[1.5])
    assert ai_answer_score([0.9, 0.5, 0.51, 0.1]) == -2.0


def test_refreshing_again_changes_nothing(researcher):
    """Pairs are re-derived, not added: refreshing twice leaves the same pairs."""
    project = project_with_items("pw", "pairwise", {"i1": ["x", "y"]}, created_by=researcher)
    x, y = responses_of(project, "i1")
    (judge_user,) = people("judge", 1)
    judge(x, y, judge_user, "a")
    item = Item.objects.get(external_id="i1")
    first = [(p.chosen_text, p.rejected_text) for p in services.preference_pairs_refresh(item=item)]
    second = [(p.chosen_text, p.rejected_text) for p in services.preference_pairs_refresh(item=item)]
    assert first == second == [("x", "y")]
    assert PreferencePair.objects.count() == 1


def _pairwise_same(project, annotator):
    judge(*responses_of(project, "i1")[:2], annotator, "a")


def _ranking_same(project, annotator):
    rank(responses_of(project, "i1"), annotator)


def _rating_same(project, annotator):
    funny = {"funny": 90, "somewhat funny": 5, "unfunny": 5}
    dull = {"funny": 5, "somewhat funny": 5, "unfunny": 90}
    for response, counts in zip(responses_of(project, "i1"), (funny, dull, dull), strict=True):
        response.meta = {"rating_counts": counts}
        response.save()


def _ai_same(project, annotator):
    for response, score in zip(responses_of(project, "i1"), (0.0, -2.0, -3.0), strict=True):
        AIFeedback.objects.create(response=response, labeler_model="m", score=score)


def _correction_same(project, annotator):
    first, second, _third = responses_of(project, "i1")
    correct(first, annotator, [], "  Same answer.\n")
    correct(second, annotator, [], "A new answer.")


@pytest.mark.parametrize(
    ("kind", "make", "kept"),
    [
        ("pairwise", _pairwise_same, 0),
        ("ranking", _ranking_same, 2),
        ("rating", _rating_same, 1),
        ("pairwise", _ai_same, 2),
        ("correction", _correction_same, 1),
    ],
    ids=["pairwise", "ranking", "rating", "ai", "correction"],
)
def test_no_source_stores_a_pair_of_the_same_answer(researcher, annotator, kind, make, kept):
    """Two responses that differ only in whitespace ("Same answer." and " Same  answer. ") never become a pair,
    whatever the feedback; re-deriving says how many such pairs it left out, and the other pairs stay."""
    project = project_with_items(
        "same", kind, {"i1": ["Same answer.", " Same  answer. ", "Something else entirely."]}, created_by=researcher
    )
    make(project, annotator)
    rebuilt = services.preference_pairs_refresh_project(project=project)
    pairs = list(PreferencePair.objects.filter(project=project))
    assert (rebuilt.created, rebuilt.self_pairs_dropped) == (kept, 1)
    assert len(pairs) == kept
    assert all(pair.chosen_text.split() != pair.rejected_text.split() for pair in pairs)
