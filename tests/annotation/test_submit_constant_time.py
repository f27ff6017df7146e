"""Submits in constant time (issue 15): a submit keeps per-caption rating counters and marks its item's pairs
stale instead of re-deriving them; a snapshot derives the stale pairs before it freezes, so it still holds
every acknowledged annotation, exactly the pairs a from-scratch derivation gives."""

import random
import threading
import uuid
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation import selectors, services
from annotation.models import (
    DEFAULT_HALLUCINATION_TYPES,
    Item,
    PreferencePair,
    Rating,
    Response,
    ResponseRatingCount,
)
from annotation.services.preference_pairs import feedback_load, pairs_for_items, rating_scale
from tests.annotation.test_queue import make_project

# Per kind: items, responses per item, and overlap (every annotator answers every unit).
SHAPES = {
    "rating": (2, 6, 5),
    "pairwise": (4, 2, 5),
    "ranking": (3, 3, 5),
    "correction": (3, 1, 5),
}


def _answer(kind: str, assignment, rng: random.Random) -> dict:
    """A plausible answer of each kind; ratings lean on the caption's position so that pairs follow."""
    if kind == "rating":
        position = Response.objects.get(pk=assignment.response_id).position
        return {"level": min(2, max(0, position // 2 + rng.choice([-1, 0, 0, 0, 1])))}
    if kind == "pairwise":
        return {"choice": rng.choice(["a", "a", "b", "tie"]), "strength": rng.choice([1, 2])}
    if kind == "ranking":
        order = list(assignment.shown_order)
        rng.shuffle(order)
        return {"order": order}
    text = Response.objects.get(pk=assignment.response_id).text
    if rng.random() < 0.3:
        return {"segments": []}
    start = text.index("answer")
    return {
        "segments": [
            {
                "start": start,
                "end": start + len("answer"),
                "type": rng.choice(DEFAULT_HALLUCINATION_TYPES),
                "replacement": rng.choice(["reply", "response"]),
                "original": "answer",
            }
        ]
    }


SUBMIT = {
    "rating": services.rating_submit,
    "pairwise": services.pairwise_judgment_submit,
    "ranking": services.ranking_submit,
    "correction": services.correction_submit,
}


def _submit_all(project, users, rng: random.Random) -> list:
    """Every annotator answers every task they are offered; returns the assignments answered."""
    answered = []
    for user in users:
        while (assignment := services.assignment_next(project=project, annotator=user)) is not None:
            SUBMIT[project.kind](
                assignment_id=assignment.pk,
                annotator=user,
                client_request_id=uuid.uuid4().hex,
                **_answer(project.kind, assignment, rng),
            )
            answered.append((user, assignment))
    return answered


def _from_scratch(project) -> Counter:
    """The pair rows a derivation from every annotation of the project gives, as comparable tuples."""
    items = list(Item.objects.filter(project=project).select_related("project").order_by("id"))
    return Counter(
        (
            d.row.item_key,
            d.row.source,
            d.row.chosen,
            d.row.rejected,
            round(d.row.margin if d.row.margin is not None else 1.0, 9),
            round(d.row.agreement if d.row.agreement is not None else 1.0, 9),
            d.row.n_votes,
        )
        for d in pairs_for_items(feedback_load(items=items), scale=rating_scale(project))
    )


def _snapshot_pairs(project, researcher) -> Counter:
    snapshot = services.snapshot_create(
        project=project, created_by=researcher, snapshot_filter=services.SnapshotFilter(test_fraction=0.0)
    )
    return Counter(
        (
            row["item_key"],
            row["source"],
            row["chosen"],
            row["rejected"],
            round(row["margin"], 9),
            round(row["agreement"], 9),
            row["n_votes"],
        )
        for row in selectors.snapshot_rows(snapshot=snapshot)
    )


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_a_snapshot_after_submits_holds_exactly_the_pairs_of_a_derivation_from_scratch(kind, researcher, make_user):
    """Submits store no pairs (they only mark the item stale); the snapshot then holds every pair the
    annotations imply, including amended answers and answers given after an earlier snapshot."""
    items, responses, overlap = SHAPES[kind]
    users = [make_user(f"ct-{kind}-{i}") for i in range(overlap)]
    project = make_project(researcher, users, kind=kind, items=items, responses=responses, overlap=overlap)
    rng = random.Random(15)
    late = users.pop()  # answers only after the first snapshot
    answered = _submit_all(project, users, rng)
    assert len(answered) == items * (responses if kind in ("rating", "correction") else 1) * len(users)
    assert not PreferencePair.objects.filter(project=project).exists()
    assert Item.objects.filter(project=project, pairs_stale=True).count() == items

    # Two annotators go back and change their answers (amends) before the snapshot.
    for user, assignment in answered[:: max(1, len(answered) // 2)]:
        SUBMIT[kind](
            assignment_id=assignment.pk,
            annotator=user,
            client_request_id=uuid.uuid4().hex,
            **_answer(kind, assignment, rng),
        )
    expected = _from_scratch(project)
    assert expected, "the answers should imply some pairs"
    assert _snapshot_pairs(project, researcher) == expected
    assert not Item.objects.filter(project=project, pairs_stale=True).exists()

    _submit_all(project, [late], rng)
    later = _from_scratch(project)
    assert later != expected
    assert _snapshot_pairs(project, researcher) == later


def _rating_submit_queries(researcher, make_user, captions: int) -> list[str]:
    rater = make_user(f"ct-rater-{captions}")
    project = make_project(
        researcher, [rater], kind="rating", items=1, responses=captions, overlap=1, slug=f"ct-{captions}"
    )
    # Earlier raters' ratings of every caption, stored in bulk: what re-deriving pairs would have to read.
    earlier = [make_user(f"ct-earlier-{captions}-{i}") for i in range(3)]
    item = project.items.get()
    Rating.objects.bulk_create(
        Rating(item=item, response=r, annotator=u, client_request_id=f"{u.pk}-{r.pk}", level=(r.position + u.pk) % 3)
        for r in item.responses.all()
        for u in earlier
    )
    assignment = services.assignment_next(project=project, annotator=rater)
    with CaptureQueriesContext(connection) as queries:
        services.rating_submit(assignment_id=assignment.pk, annotator=rater, level=2, client_request_id="one")
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.django_db
def test_a_rating_submit_runs_the_same_statements_for_a_contest_of_5_or_400_captions(researcher, make_user):
    """The submit's statements do not depend on the contest's size, and none reads the other ratings or
    writes pairs (which is what made a submit take seconds on a 9,000-caption contest)."""
    small = _rating_submit_queries(researcher, make_user, 5)
    large = _rating_submit_queries(researcher, make_user, 400)
    assert len(small) == len(large)
    pairs, ratings = PreferencePair._meta.db_table, Rating._meta.db_table
    for sql in large:
        assert pairs not in sql
        assert f'FROM "{ratings}"' not in sql or "client_request_id" in sql or "assignment_id" in sql, sql


def _recount(project) -> dict[tuple[int, int], int]:
    rows = Rating.objects.filter(item__project=project).values_list("response_id", "level")
    return dict(Counter(rows))


def _counters(project) -> dict[tuple[int, int], int]:
    return {
        (c.response_id, c.level): c.n_ratings
        for c in ResponseRatingCount.objects.filter(response__project=project)
        if c.n_ratings
    }


@pytest.mark.django_db
def test_rating_counters_follow_submits_and_amends(researcher, make_user):
    raters = [make_user(f"ct-count-{i}") for i in range(3)]
    project = make_project(researcher, raters, kind="rating", items=1, responses=1, overlap=3)
    caption = project.items.get().responses.order_by("position").first()
    assignment = None
    for rater in raters:
        assignment = services.assignment_next(project=project, annotator=rater)
        assert assignment.response_id == caption.pk
        services.rating_submit(assignment_id=assignment.pk, annotator=rater, level=1, client_request_id="first")
    # The last rater changes their mind; replaying a request changes nothing.
    services.rating_submit(assignment_id=assignment.pk, annotator=raters[-1], level=2, client_request_id="again")
    services.rating_submit(assignment_id=assignment.pk, annotator=raters[-1], level=2, client_request_id="again")
    assert _counters(project) == {(caption.pk, 1): 2, (caption.pk, 2): 1}
    assert _counters(project) == _recount(project)


@pytest.mark.django_db(transaction=True)
@pytest.mark.production_path
def test_rating_counters_equal_a_recount_after_concurrent_submits(researcher, make_user):
    """Six raters rating the same eight captions at once, some changing their answers: every counter ends
    equal to a count of the stored ratings (no lost update between two submits on one caption)."""
    raters = [make_user(f"ct-concurrent-{i}") for i in range(6)]
    project = make_project(researcher, raters, kind="rating", items=1, responses=8, overlap=6, slug="ct-concurrent")
    barrier = threading.Barrier(len(raters))
    errors: list[BaseException] = []

    def rate(rater, seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait(timeout=30)
            while (assignment := services.assignment_next(project=project, annotator=rater)) is not None:
                services.rating_submit(
                    assignment_id=assignment.pk,
                    annotator=rater,
                    level=rng.randrange(3),
                    client_request_id=uuid.uuid4().hex,
                )
                if rng.random() < 0.3:
                    services.rating_submit(
                        assignment_id=assignment.pk,
                        annotator=rater,
                        level=rng.randrange(3),
                        client_request_id=uuid.uuid4().hex,
                    )
        except BaseException as error:  # noqa: BLE001 — reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=rate, args=(rater, i)) for i, rater in enumerate(raters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert Rating.objects.filter(item__project=project).count() == 6 * 8
    counters = _counters(project)
    assert sum(counters.values()) == 6 * 8
    assert counters == _recount(project)
