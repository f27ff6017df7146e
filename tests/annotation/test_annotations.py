"""Submitting each kind of annotation through the API: what the server checks, what it stores, and the
pairs derived from it (when a snapshot freezes: `preference_pairs_refresh_stale`)."""

import pytest

from annotation import services
from annotation.models import AIFeedback, Correction, PairSource, PreferencePair, Ranking
from tests.annotation.test_queue import make_project, next_task, submit

pytestmark = [pytest.mark.django_db, pytest.mark.production_path]

TEXT = "A red cube 🟥 sits left of two blue balls."


@pytest.fixture
def correction_task(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], kind="correction", items=1, responses=1)
    response = project.items.get().responses.get()
    response.text = TEXT
    response.save()
    client = api_client_for(annotator)
    return project, client, next_task(client, project.slug)


def segment(word: str, replacement: str, kind: str = "attribute", text: str = TEXT) -> dict:
    start = text.index(word)
    return {"start": start, "end": start + len(word), "type": kind, "replacement": replacement, "original": word}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"start": 40, "end": 60, "type": "object", "replacement": "x", "original": "balls."}, "not a non-empty span"),
        ({**segment("red", "green"), "original": "rod"}, "does not match the answer"),
        ({**segment("red", "green"), "type": "colour"}, "unknown type"),
        (segment("red", "red"), "same as the marked text"),
        ({**segment("red", "green"), "start": "3"}, "whole number"),
    ],
)
def test_the_server_refuses_segments_that_do_not_fit_the_stored_text(correction_task, bad, message):
    """Offsets are checked against the stored answer, never trusted: a bad segment is refused, with a
    message naming it, and nothing is stored."""
    project, client, task = correction_task
    response = submit(client, project.slug, task, segments=[segment("two", "three", "count"), bad])
    assert response.status_code == 400, response.content
    assert message in response.json()["message"]
    assert Correction.objects.count() == 0


def test_overlapping_segments_are_refused(correction_task):
    project, client, task = correction_task
    response = submit(client, project.slug, task, segments=[segment("red cube", "green cone"), segment("cube", "cone")])
    assert response.status_code == 400 and "overlap" in response.json()["message"]


def test_a_correction_stores_sorted_segments_and_the_corrected_text_the_server_computes(correction_task):
    """Segments arrive in any order, offsets in code points (the emoji counts one); the server sorts them,
    computes the corrected text itself, and a correction pair with the changed spans follows."""
    project, client, task = correction_task
    response = submit(
        client,
        project.slug,
        task,
        segments=[segment("two", "three", "count"), segment("red", "green")],
        corrected_text="whatever the client says",
    )
    assert response.status_code == 201, response.content
    stored = Correction.objects.get()
    assert stored.corrected_text == "A green cube 🟥 sits left of three blue balls."
    assert [s["original"] for s in stored.segments] == ["red", "two"]
    assert response.json()["corrected_text"] == stored.corrected_text
    services.preference_pairs_refresh_stale(project=project)
    pair = PreferencePair.objects.get(source=PairSource.CORRECTION)
    assert (pair.chosen_text, pair.rejected_text) == (stored.corrected_text, TEXT)
    assert pair.rejected_spans == [
        [TEXT.index("red"), TEXT.index("red") + 3],
        [TEXT.index("two"), TEXT.index("two") + 3],
    ]


def test_no_hallucination_stores_the_answer_as_correct(correction_task):
    project, client, task = correction_task
    assert submit(client, project.slug, task, segments=[]).status_code == 201
    stored = Correction.objects.get()
    assert stored.segments == [] and stored.corrected_text == TEXT
    services.preference_pairs_refresh_stale(project=project)
    assert not PreferencePair.objects.filter(source=PairSource.CORRECTION).exists()


def test_a_kind_needs_its_own_answer_field(correction_task):
    project, client, task = correction_task
    response = submit(client, project.slug, task, choice="a")
    assert response.status_code == 400 and "segments" in response.json()["message"]


def test_a_ranking_must_order_every_shown_answer_once(researcher, annotator, api_client_for):
    """Orders with a missing, repeated or foreign answer are refused; a full order is stored best first
    and gives every implied pair."""
    project = make_project(researcher, [annotator], kind="ranking", items=1, responses=3)
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    ids = [r["id"] for r in task["responses"]]
    for bad in (ids[:2], [ids[0], ids[0], ids[1]], [*ids[:2], 10**9]):
        assert submit(client, project.slug, task, order=bad).status_code == 400
    best_first = [ids[2], ids[0], ids[1]]
    assert submit(client, project.slug, task, order=best_first).status_code == 201
    assert Ranking.objects.get().order == best_first
    services.preference_pairs_refresh_stale(project=project)
    assert PreferencePair.objects.filter(source=PairSource.RANKING).count() == 3


def test_pairwise_answers_are_checked(researcher, annotator, api_client_for):
    project = make_project(researcher, [annotator], items=1)
    client = api_client_for(annotator)
    task = next_task(client, project.slug)
    assert submit(client, project.slug, task, choice="maybe").status_code == 400
    assert submit(client, project.slug, task, choice="a", strength=3).status_code == 400
    tie = submit(client, project.slug, task, choice="tie", strength=2)
    assert tie.status_code == 201 and tie.json()["strength"] == 1, "a tie has no strength"


def test_pairwise_with_more_than_two_answers_shows_a_random_pair_and_records_it(researcher, make_user, api_client_for):
    """An item with four answers is shown as two of them; the judgment is about exactly those two."""
    users = [make_user(f"pair-{i}") for i in range(6)]
    project = make_project(researcher, users, items=1, responses=4, overlap=6)
    pairs = set()
    for user in users:
        client = api_client_for(user)
        task = next_task(client, project.slug)
        assert len(task["responses"]) == 2
        assert submit(client, project.slug, task, choice="a").status_code == 201
        pairs.add(tuple(r["id"] for r in task["responses"]))
    from annotation.models import PairwiseJudgment

    assert {(j.response_a_id, j.response_b_id) for j in PairwiseJudgment.objects.all()} == pairs


def test_the_ai_suggestion_is_sent_only_where_the_project_shows_it(researcher, annotator, api_client_for):
    """The labeler's verdict (score, claims with P(yes)) rides along with the task when the project asks."""
    project = make_project(researcher, [annotator], items=1)
    first_response = project.items.get().responses.order_by("position").first()
    AIFeedback.objects.create(
        response=first_response,
        labeler_model="tiny-vlm",
        claims=["a cube"],
        questions=["Is there a cube?"],
        p_yes=[0.3],
        score=-1.0,
    )
    client = api_client_for(annotator)
    assert next_task(client, project.slug)["ai_suggestion"] is None
    services.project_update(project=project, show_ai_suggestions=True)
    suggestion = next_task(client, project.slug)["ai_suggestion"]["responses"][str(first_response.pk)]
    assert suggestion == {"score": -1.0, "labeler_model": "tiny-vlm", "claims": [{"claim": "a cube", "p_yes": 0.3}]}
