"""The review of annotations through the API (issue 17): who may review, a reviewer never sees their own
work, accept / edit / reject, idempotent decisions, what the annotator sees, and snapshots that require
accepted annotations (edited ones in the reviewer's version)."""

import io
import uuid

import pytest
from django.core.management import call_command

from annotation import services
from annotation.models import AnnotationReview, Correction, DatasetSnapshot, Role
from annotation.selectors import snapshot_rows
from tests.annotation.test_queue import make_project, next_task, submit

pytestmark = [pytest.mark.django_db, pytest.mark.production_path]


def segment(text: str, word: str, replacement: str, kind: str = "object") -> dict:
    start = text.index(word)
    return {"start": start, "end": start + len(word), "type": kind, "replacement": replacement, "original": word}


def review_next(client, slug, **params):
    return client.get(f"/api/v1/projects/{slug}/reviews/next/", params)


def review(client, slug, annotation_id, decision, **fields):
    body = {
        "annotation_id": annotation_id,
        "decision": decision,
        "client_request_id": fields.pop("client_request_id", uuid.uuid4().hex),
        **fields,
    }
    return client.post(f"/api/v1/projects/{slug}/reviews/", body, format="json")


@pytest.fixture
def reviewer(make_user):
    return make_user("rex-reviewer")


@pytest.fixture
def corrected(researcher, annotator, reviewer, api_client_for):
    """A correction project of three answers, each corrected by the annotator ("answer" → "reply");
    `reviewer` has the reviewer role."""
    project = make_project(researcher, [annotator], kind="correction", items=3, responses=1, slug="review-c")
    services.project_member_add(project=project, user=reviewer, role=Role.REVIEWER)
    client = api_client_for(annotator)
    for _ in range(3):
        task = next_task(client, project.slug)
        text = task["responses"][0]["text"]
        assert submit(client, project.slug, task, segments=[segment(text, "answer", "reply")]).status_code == 201
    corrections = list(Correction.objects.select_related("response", "item").order_by("pk"))
    return project, corrections


def test_only_reviewers_and_managers_review_and_annotators_see_their_outcome(
    corrected, researcher, annotator, reviewer, outsider, api_client_for, client
):
    """Reviewers and managers get the stream; an annotator gets the API's 404 (the page's 403), an outsider
    the 404 of a project that does not exist; the annotator may read the outcome of their own work."""
    project, corrections = corrected
    for user in (reviewer, researcher):
        response = review_next(api_client_for(user), project.slug)
        assert response.status_code == 200, response.content
        assert response.json()["annotation_id"] == corrections[0].pk
    for user in (annotator, outsider):
        assert review_next(api_client_for(user), project.slug).status_code == 404
        assert review(api_client_for(user), project.slug, corrections[0].pk, "accepted").status_code == 404
    assert AnnotationReview.objects.count() == 0
    assert api_client_for(annotator).get(f"/api/v1/projects/{project.slug}/my-reviews/").status_code == 200
    assert api_client_for(outsider).get(f"/api/v1/projects/{project.slug}/my-reviews/").status_code == 404

    client.force_login(annotator)
    assert client.get(f"/projects/{project.slug}/review/").status_code == 403
    client.force_login(outsider)
    assert client.get(f"/projects/{project.slug}/review/").status_code == 404
    client.force_login(reviewer)
    assert client.get(f"/projects/{project.slug}/review/").status_code == 200


def test_a_reviewer_never_reviews_their_own_work(researcher, annotator, reviewer, api_client_for):
    """A reviewer who also annotates is never offered their own answer and cannot decide on it."""
    project = make_project(researcher, [annotator], kind="pairwise", items=2, slug="review-own")
    services.project_member_add(project=project, user=reviewer, role=Role.REVIEWER)
    reviewer_client = api_client_for(reviewer)
    own = next_task(reviewer_client, project.slug)
    assert submit(reviewer_client, project.slug, own, choice="a").status_code == 201
    others = next_task(api_client_for(annotator), project.slug)
    assert submit(api_client_for(annotator), project.slug, others, choice="b").status_code == 201

    offered = review_next(reviewer_client, project.slug).json()
    assert offered["annotator"] == annotator.username and offered["answer"]["choice"] == "b"
    own_id = project_annotation_id(project, reviewer)
    refused = review(reviewer_client, project.slug, own_id, "accepted")
    assert refused.status_code == 400 and "own work" in refused.json()["message"]
    assert review(reviewer_client, project.slug, offered["annotation_id"], "accepted").status_code == 201
    assert review_next(reviewer_client, project.slug).status_code == 204
    # The manager, who gave no answer, still has the reviewer's own judgment to review.
    assert review_next(api_client_for(researcher), project.slug).json()["annotation_id"] == own_id


def project_annotation_id(project, user) -> int:
    from annotation.models import PairwiseJudgment

    return PairwiseJudgment.objects.get(item__project=project, annotator=user).pk


def test_accept_edit_and_reject_then_the_annotator_sees_the_outcome(
    corrected, annotator, reviewer, api_client_for, client
):
    """The stream goes oldest first and moves on after each decision; a rejection needs a comment; an edit
    is checked like a submit and must change something; the annotator sees counts and comments."""
    project, (first, second, third) = corrected
    client = api_client_for(reviewer)
    shown = review_next(client, project.slug).json()
    assert shown["annotation_id"] == first.pk and shown["annotator"] == annotator.username
    assert shown["responses"] == [{"id": first.response_id, "text": first.response.text}]
    assert shown["answer"]["corrected_text"] == first.corrected_text and shown["review"] is None
    assert review(client, project.slug, first.pk, "accepted").status_code == 201

    assert review_next(client, project.slug).json()["annotation_id"] == second.pk
    text = second.response.text
    bad = review(
        client, project.slug, second.pk, "edited", edited={"segments": [{**segment(text, "i1", "x"), "original": "zz"}]}
    )
    assert bad.status_code == 400 and bad.json()["extra"]["field"] == "edited"
    assert "does not match the answer" in bad.json()["message"]
    same = review(client, project.slug, second.pk, "edited", edited={"segments": second.segments})
    assert same.status_code == 400 and "changes nothing" in same.json()["message"]
    edit = [segment(text, "answer", "reply"), segment(text, "i1", "item one", kind="attribute")]
    edited = review(client, project.slug, second.pk, "edited", edited={"segments": edit}, comment="Also the name.")
    assert edited.status_code == 201, edited.content
    assert edited.json()["edited"]["corrected_text"] == "item one reply 0"

    assert review_next(client, project.slug).json()["annotation_id"] == third.pk
    silent = review(client, project.slug, third.pk, "rejected")
    assert silent.status_code == 400 and silent.json()["extra"]["field"] == "comment"
    assert review(client, project.slug, third.pk, "rejected", comment="Nothing was wrong here.").status_code == 201
    assert review_next(client, project.slug).status_code == 204

    # The annotation itself stays as the annotator gave it.
    second.refresh_from_db()
    assert second.corrected_text == "i1 reply 0"
    outcome = api_client_for(annotator).get(f"/api/v1/projects/{project.slug}/my-reviews/").json()
    assert (outcome["accepted"], outcome["edited"], outcome["rejected"]) == (1, 1, 1)
    by_id = {row["annotation_id"]: row for row in outcome["reviews"]}
    assert by_id[third.pk]["comment"] == "Nothing was wrong here." and by_id[third.pk]["decision"] == "rejected"
    assert by_id[second.pk]["edited"]["corrected_text"] == "item one reply 0"
    assert by_id[second.pk]["reviewer"] == reviewer.username

    # The project page: the annotator sees the counts and the comment; the reviewer gets the stream's link.
    client.force_login(annotator)
    page = client.get(f"/projects/{project.slug}/").content.decode()
    assert "<b>1</b> accepted, <b>1</b> edited, <b>1</b> rejected" in page
    assert "Nothing was wrong here." in page and 'id="review-link"' not in page
    client.force_login(reviewer)
    page = client.get(f"/projects/{project.slug}/").content.decode()
    assert 'id="review-link"' in page and 'id="review-outcome"' not in page


def test_a_repeated_review_request_stores_one_decision(corrected, reviewer, api_client_for):
    """The same request id twice stores once and answers the same, even with another decision in the
    body; the same id for another annotation is refused; a new request re-reviews (the latest wins)."""
    project, (first, second, _) = corrected
    client = api_client_for(reviewer)
    once = review(client, project.slug, first.pk, "accepted", client_request_id="r-1")
    twice = review(client, project.slug, first.pk, "rejected", comment="changed my mind", client_request_id="r-1")
    assert once.status_code == twice.status_code == 201
    assert twice.json()["decision"] == "accepted" and twice.json()["replayed"] is True
    assert AnnotationReview.objects.get().decision == "accepted"
    other = review(client, project.slug, second.pk, "accepted", client_request_id="r-1")
    assert other.status_code == 400 and "another review" in other.json()["message"]

    again = review(client, project.slug, first.pk, "rejected", comment="Missed one.", client_request_id="r-2")
    assert again.status_code == 201
    assert list(AnnotationReview.objects.values_list("annotation_id", "decision")) == [(first.pk, "rejected")]


def test_bad_review_input_is_a_clear_400(corrected, reviewer, api_client_for):
    project, (first, *_) = corrected
    client = api_client_for(reviewer)
    for body, field in (
        ({"decision": "maybe"}, "decision"),
        ({"decision": "edited", "edited": None}, "edited"),
        ({"decision": "accepted", "edited": {"segments": []}}, "edited"),
    ):
        response = review(client, project.slug, first.pk, **body)
        assert response.status_code == 400, response.content
        assert field in str(response.json()), response.json()
    assert review(client, project.slug, 10**9, "accepted").status_code == 404
    assert review_next(client, project.slug, after="x").status_code == 400
    assert AnnotationReview.objects.count() == 0


def _rows(snapshot):
    return sorted(snapshot_rows(snapshot=snapshot), key=lambda row: row["item_key"])


def test_a_snapshot_that_requires_accepted_holds_exactly_the_accepted_and_edited_rows(
    corrected, annotator, reviewer, api_client_for
):
    """Accepted i0, edited i1, rejected i2, and i0's answer changed after its review: only i1 is left,
    in the reviewer's version (chosen text and spans); a plain snapshot keeps all three with i1 edited."""
    project, (first, second, third) = corrected
    client = api_client_for(reviewer)
    text = second.response.text
    edit = [segment(text, "i1", "item one", kind="attribute")]
    assert review(client, project.slug, first.pk, "accepted").status_code == 201
    assert review(client, project.slug, second.pk, "edited", edited={"segments": edit}).status_code == 201
    assert review(client, project.slug, third.pk, "rejected", comment="No.").status_code == 201

    accepted_only = services.SnapshotFilter(require_accepted=True, test_fraction=0.0)
    snapshot = services.snapshot_create(project=project, created_by=None, snapshot_filter=accepted_only)
    rows = _rows(snapshot)
    assert [(row["item_key"], row["chosen"], row["rejected"]) for row in rows] == [
        ("i0", "i0 reply 0", "i0 answer 0"),
        ("i1", "item one answer 0", "i1 answer 0"),
    ]
    assert rows[1]["rejected_spans"] == [[0, 2]] and rows[1]["chosen_spans"] == [[0, 8]]
    assert snapshot.filters["require_accepted"] is True
    # The same filter from the API and the command line gives the same snapshot.
    researcher_client = api_client_for(project.memberships.get(role=Role.MANAGER).user)
    made = researcher_client.post(
        f"/api/v1/projects/{project.slug}/snapshots/", {"require_accepted": True, "test_fraction": 0.0}, format="json"
    )
    assert made.status_code == 201 and made.json()["id"] == snapshot.pk
    call_command(
        "snapshot", "--project", project.slug, "--require-accepted", "--test-fraction", "0", stderr=io.StringIO()
    )
    assert DatasetSnapshot.objects.filter(project=project).count() == 1

    everything = _rows(
        services.snapshot_create(
            project=project, created_by=None, snapshot_filter=services.SnapshotFilter(test_fraction=0.0)
        )
    )
    assert [(row["item_key"], row["chosen"]) for row in everything] == [
        ("i0", "i0 reply 0"),
        ("i1", "item one answer 0"),
        ("i2", "i2 reply 0"),
    ]

    # The annotator changes the accepted answer: its review no longer holds, and it is offered again.
    annotator_client = api_client_for(annotator)
    task = annotator_client.get(f"/api/v1/projects/{project.slug}/tasks/{first.assignment_id}/").json()
    assert (
        submit(annotator_client, project.slug, task, segments=[segment(first.response.text, "i0", "it")]).status_code
        == 201
    )
    assert review_next(client, project.slug).json()["annotation_id"] == first.pk
    again = services.snapshot_create(project=project, created_by=None, snapshot_filter=accepted_only)
    assert [row["item_key"] for row in _rows(again)] == ["i1"]


def test_an_edited_pairwise_judgment_counts_in_the_reviewers_version(researcher, annotator, reviewer, api_client_for):
    """A judgment edited from A to B gives the pair the other way round in the stored pairs."""
    project = make_project(researcher, [annotator], kind="pairwise", items=1, slug="review-p")
    services.project_member_add(project=project, user=reviewer, role=Role.REVIEWER)
    annotator_client = api_client_for(annotator)
    task = next_task(annotator_client, project.slug)
    assert submit(annotator_client, project.slug, task, choice="a", strength=2).status_code == 201
    left, right = (r["text"] for r in task["responses"])
    before = _rows(services.snapshot_create(project=project, created_by=None))
    assert [(row["chosen"], row["rejected"]) for row in before] == [(left, right)]
    shown = review_next(api_client_for(reviewer), project.slug).json()
    assert [r["text"] for r in shown["responses"]] == [left, right]
    edited = review(api_client_for(reviewer), project.slug, shown["annotation_id"], "edited", edited={"choice": "b"})
    assert edited.status_code == 201 and edited.json()["edited"]["strength"] == 2
    rows = _rows(services.snapshot_create(project=project, created_by=None))
    assert [(row["chosen"], row["rejected"]) for row in rows] == [(right, left)]


def test_rating_and_ranking_edits_are_checked_like_submits_and_count_as_edited(
    researcher, annotator, reviewer, api_client_for
):
    """A rating edited off the scale, or a ranking that leaves out an answer, is refused as a submit
    would be; valid edits count in the reviewer's version, and a ratings snapshot that requires
    accepted annotations holds the accepted and edited ratings only."""
    ratings = make_project(researcher, [annotator], kind="rating", items=1, responses=3, slug="review-r")
    services.project_member_add(project=ratings, user=reviewer, role=Role.REVIEWER)
    annotator_client, client = api_client_for(annotator), api_client_for(reviewer)
    for level in (0, 1, 2):
        task = next_task(annotator_client, ratings.slug)
        assert submit(annotator_client, ratings.slug, task, level=level).status_code == 201
    shown = []
    after = None
    while (task := review_next(client, ratings.slug, **({"after": after} if after else {}))).status_code == 200:
        shown.append(task.json())
        after = task.json()["annotation_id"]
    assert [t["answer"]["level"] for t in shown] == [0, 1, 2]
    off_scale = review(client, ratings.slug, shown[1]["annotation_id"], "edited", edited={"level": 3})
    assert off_scale.status_code == 400 and "Level must be 0..2" in off_scale.json()["message"]
    assert review(client, ratings.slug, shown[0]["annotation_id"], "accepted").status_code == 201
    assert review(client, ratings.slug, shown[1]["annotation_id"], "edited", edited={"level": 2}).status_code == 201
    assert review(client, ratings.slug, shown[2]["annotation_id"], "rejected", comment="Too kind.").status_code == 201
    snapshot = services.snapshot_create(
        project=ratings,
        created_by=None,
        snapshot_filter=services.SnapshotFilter(kind="ratings", require_accepted=True, test_fraction=0.0),
    )
    texts = {t["annotation_id"]: t["responses"][0]["text"] for t in shown}
    counts = {row["text"]: row["counts"] for row in snapshot_rows(snapshot=snapshot)}
    assert counts == {texts[shown[0]["annotation_id"]]: {"unfunny": 1}, texts[shown[1]["annotation_id"]]: {"funny": 1}}

    ranking = make_project(researcher, [annotator], kind="ranking", items=1, responses=3, slug="review-k")
    services.project_member_add(project=ranking, user=reviewer, role=Role.REVIEWER)
    task = next_task(annotator_client, ranking.slug)
    order = [r["id"] for r in task["responses"]]
    assert submit(annotator_client, ranking.slug, task, order=order).status_code == 201
    shown = review_next(client, ranking.slug).json()
    assert [r["id"] for r in shown["responses"]] == order
    partial = review(client, ranking.slug, shown["annotation_id"], "edited", edited={"order": order[:2]})
    assert partial.status_code == 400 and "every shown answer" in partial.json()["message"]
    reversed_order = order[::-1]
    assert (
        review(client, ranking.slug, shown["annotation_id"], "edited", edited={"order": reversed_order}).status_code
        == 201
    )
    rows = list(snapshot_rows(snapshot=services.snapshot_create(project=ranking, created_by=None)))
    best = next(r["text"] for r in task["responses"] if r["id"] == reversed_order[0])
    assert rows and all(row["rejected"] != best for row in rows)
    assert any(row["chosen"] == best for row in rows)
