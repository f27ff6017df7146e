"""The AI labeler's suggestion beside an annotator's answer: shown only where the project allows, the
annotation stored as the annotator gave it, and whether they took the suggestion recorded apart."""

import pytest

from annotation import services
from annotation.models import AISuggestionUse, Correction, Item, PairwiseJudgment, Response
from annotation.services.suggestions import doubted_spans

GOOD = "A red circle is on the left. A blue square is on the right."
BAD = "A green star is on the left. A blue square is on the right."


def _feedback(response, p_yes):
    claims = response.text.rstrip(".").split(". ")
    services.ai_feedback_record(response=response, labeler_model="tiny-labeler", claims=claims, p_yes=p_yes)


def _project(slug, kind, researcher, annotator, texts, *, show=True):
    project = services.project_create(slug=slug, kind=kind, created_by=researcher, show_ai_suggestions=show)
    services.project_member_add(project=project, user=annotator)
    item = Item.objects.create(project=project, external_id="i1", prompt="Describe.")
    Response.objects.bulk_create(Response(item=item, position=k, text=t) for k, t in enumerate(texts))
    return project


def _next(client, project):
    answer = client.post(f"/api/v1/projects/{project.slug}/tasks/next/")
    assert answer.status_code == 200, answer.content
    return answer.json()


def _submit(client, project, task, **fields):
    url = f"/api/v1/projects/{project.slug}/tasks/{task['assignment_id']}/submit/"
    answer = client.post(url, {"client_request_id": f"r-{task['assignment_id']}", **fields}, format="json")
    assert answer.status_code == 201, answer.content


@pytest.mark.parametrize(("follow", "took"), [(True, True), (False, False)])
def test_a_pairwise_choice_records_whether_it_followed_the_labelers_preference(
    researcher, annotator, api_client_for, follow, took
):
    """The task carries both verdicts; the judgment keeps the annotator's choice, and the suggestion row says
    which answer the labeler preferred and whether that was chosen."""
    project = _project("sugg-pair", "pairwise", researcher, annotator, [GOOD, BAD])
    good, bad = Response.objects.filter(project=project).order_by("position")
    _feedback(good, [0.9, 0.8])
    _feedback(bad, [0.1, 0.8])
    client = api_client_for(annotator)
    task = _next(client, project)
    assert set(task["ai_suggestion"]["responses"]) == {str(good.pk), str(bad.pk)}
    good_side = "a" if task["responses"][0]["id"] == good.pk else "b"
    choice = good_side if follow else ("b" if good_side == "a" else "a")
    _submit(client, project, task, choice=choice)
    judgment = PairwiseJudgment.objects.get()
    assert judgment.choice == choice
    use = AISuggestionUse.objects.get()
    assert (use.kind, use.annotation_id, use.annotator_id, use.labeler_model) == (
        "pairwise",
        judgment.pk,
        annotator.pk,
        "tiny-labeler",
    )
    assert use.suggested == {"prefers": good.pk, "side": good_side}
    assert use.took is took


def test_nothing_is_shown_or_recorded_where_the_project_does_not_allow_it(researcher, annotator, api_client_for):
    """With the switch off the task has no suggestion and the submit records no suggestion row."""
    project = _project("sugg-off", "pairwise", researcher, annotator, [GOOD, BAD], show=False)
    good, bad = Response.objects.filter(project=project).order_by("position")
    _feedback(good, [0.9, 0.8])
    _feedback(bad, [0.1, 0.8])
    client = api_client_for(annotator)
    task = _next(client, project)
    assert task["ai_suggestion"] is None
    _submit(client, project, task, choice="a")
    assert AISuggestionUse.objects.count() == 0 and PairwiseJudgment.objects.count() == 1


@pytest.mark.parametrize(
    ("segment", "took"),
    [((2, 12), True), ((26, 27), True), ((31, 44), False), ((27, 29), False), (None, False)],
    ids=["marks-the-doubted-claim", "marks-its-last-letter", "marks-another-span", "starts-where-it-ends", "none"],
)
def test_a_correction_records_whether_it_marked_what_the_labeler_doubted(
    researcher, annotator, api_client_for, segment, took
):
    """The doubted claim "A green star is on the left" spans [0, 27); a segment inside it took the
    suggestion, one elsewhere or none did not; the correction keeps exactly the annotator's segments."""
    project = _project("sugg-corr", "correction", researcher, annotator, [BAD])
    (bad,) = Response.objects.filter(project=project)
    _feedback(bad, [0.2, 0.9])
    client = api_client_for(annotator)
    task = _next(client, project)
    segments = []
    if segment:
        start, end = segment
        segments = [{"start": start, "end": end, "type": "object", "replacement": "x", "original": BAD[start:end]}]
    _submit(client, project, task, segments=segments)
    correction = Correction.objects.get()
    assert [(s["start"], s["end"]) for s in correction.segments] == ([segment] if segment else [])
    use = AISuggestionUse.objects.get()
    assert use.suggested == {"doubted": [[0, 27]]} and use.took is took


def test_doubted_spans_follow_the_claims_left_to_right():
    """A repeated claim is found after the previous one; a claim not in the text is skipped."""
    text = "It is red. It is red. It is big."
    claims = [
        {"claim": "It is red", "p_yes": 0.9},
        {"claim": "It is red", "p_yes": 0.2},
        {"claim": "It is blue", "p_yes": 0.1},
        {"claim": "It is big", "p_yes": 0.5},
    ]
    assert doubted_spans(text=text, claims=claims) == [[11, 20], [22, 31]]
