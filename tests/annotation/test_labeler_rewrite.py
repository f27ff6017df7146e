"""The AI labeler's rewrite (HA-DPO) as a suggested correction and as training data: "Use it" gives correction
segments the annotator edits and submits like any correction, the suggestion row records that it was taken
and whether it was edited; without a person the rewrite becomes an AI pair (rewrite chosen, original
rejected, spans from the diff) that snapshots keep by default in correction projects and the dense
exports write with its spans."""

import json

import pytest

from annotation import services
from annotation.formats import read_pair_rows_jsonl
from annotation.models import (
    AIFeedback,
    AISuggestionUse,
    Correction,
    DatasetSnapshot,
    Item,
    PreferencePair,
    Response,
)
from annotation.pair_rules import (
    RewriteInput,
    apply_segments,
    changed_spans,
    is_rewrite_pair,
    pairs_from_rewrites,
    rewrite_segments,
)
from annotation.segments import correction_check
from annotation.services.preference_pairs import ai_feedback_rewrite_record
from tests.annotation.feedback import correct, people

ANSWER = "A red cube is on the left. A green star is on the right."
REWRITE = "A red cube is on the left. A blue circle is on the right, near the cube."
TYPES = ("object", "attribute", "count", "position", "other")


# ------------------------------------------------------------------------------------------ pure rules


@pytest.mark.parametrize(
    ("original", "rewrite"),
    [
        (ANSWER, REWRITE),
        ("A red cube.", "A big red cube."),  # an insertion after the first word
        ("A cube.", "Here: A cube."),  # an insertion at the very start
        ("There are two cats and a dog.", "There are two cats."),  # a deletion
        ("A cat sat.", "A cat sat. A dog ran."),  # an insertion at the end
        ("é😀 red square", "é😀 blue square"),  # code points, as the page counts them
        ("x", "something else entirely"),
    ],
)
def test_rewrite_segments_are_a_correction_the_server_accepts_and_give_the_rewrite(original, rewrite):
    """Every segment is a non-empty span of the answer (an insertion takes a neighbouring word in), the
    server's own correction check accepts them, and the corrected text it computes is the rewrite."""
    segments = rewrite_segments(original, rewrite, kind="other")
    assert segments and all(start < end for start, end, _r, _k in segments)
    assert apply_segments(original, segments) == rewrite
    sent = [{"start": s, "end": e, "type": k, "replacement": r, "original": original[s:e]} for s, e, r, k in segments]
    assert correction_check(text=original, segments=sent, types=TYPES).corrected_text == rewrite


def test_rewrite_segments_mark_only_what_changed():
    """Changing the second sentence marks inside it only: the first sentence is no segment."""
    segments = rewrite_segments(ANSWER, REWRITE)
    assert all(start >= ANSWER.index("green") for start, _e, _r, _k in segments)
    assert [(ANSWER[s:e], r) for s, e, r, _k in segments] == [
        ("green star", "blue circle"),
        ("right", "right, near the cube"),
    ]
    assert rewrite_segments(ANSWER, ANSWER) == []


def test_a_rewrite_pair_is_the_rewrite_over_the_original_with_the_diffs_spans():
    """chosen = rewrite, rejected = original, spans = the changed spans of a diff; a rewrite that changes only
    whitespace is no pair and is counted as a self-pair."""
    from collections import Counter

    dropped = Counter()
    given = [
        RewriteInput(item_key="i", prompt="p", image=None, original_text=ANSWER, rewrite_text=REWRITE, labeler="L"),
        RewriteInput(item_key="j", prompt="p", image=None, original_text=ANSWER, rewrite_text=ANSWER + "  "),
    ]
    (row,) = pairs_from_rewrites(given, dropped=dropped)
    assert (row.chosen, row.rejected, row.source, row.meta["rewrite"]) == (REWRITE, ANSWER, "ai", True)
    rejected_spans, chosen_spans = changed_spans(ANSWER, REWRITE)
    assert (row.rejected_spans, row.chosen_spans) == (rejected_spans, chosen_spans)
    assert [ANSWER[s:e] for s, e in row.rejected_spans] == ["green star"]
    assert dropped["self_pairs"] == 1
    assert is_rewrite_pair(row) and not is_rewrite_pair({"source": "ai", "chosen_spans": [], "rejected_spans": []})


# ------------------------------------------------------------------------------------------ "use it"


def _correction_project(slug, researcher, annotator, texts, *, show=True):
    project = services.project_create(slug=slug, kind="correction", created_by=researcher, show_ai_suggestions=show)
    services.project_member_add(project=project, user=annotator)
    item = Item.objects.create(project=project, external_id="c1", prompt="Describe.")
    Response.objects.bulk_create(Response(item=item, position=k, text=t) for k, t in enumerate(texts))
    return project


def _verdict(response, *, rewrite=REWRITE, model="tiny-labeler"):
    claims = ["A red cube is on the left", "A green star is on the right"]
    spans = [[ANSWER.index(c), ANSWER.index(c) + len(c)] for c in claims]
    feedback = services.ai_feedback_record(
        response=response,
        labeler_model=model,
        claims=claims,
        p_yes=[0.91, 0.12],
        sources=["logits", "logits"],
        claim_spans=spans,
    )
    return ai_feedback_rewrite_record(feedback=feedback, text=rewrite)


def _next(client, project):
    answer = client.post(f"/api/v1/projects/{project.slug}/tasks/next/")
    assert answer.status_code == 200, answer.content
    return answer.json()


def _submit(client, project, task, **fields):
    url = f"/api/v1/projects/{project.slug}/tasks/{task['assignment_id']}/submit/"
    return client.post(url, {"client_request_id": f"r-{task['assignment_id']}", **fields}, format="json")


@pytest.mark.parametrize("edit", [False, True])
def test_using_the_rewrite_stores_a_correction_from_its_segments_and_records_it_was_taken(
    researcher, annotator, api_client_for, edit
):
    """The task offers the rewrite with its segments; submitting them (one replacement changed when `edit`)
    stores a correction like any other, whose pair's spans are those segments, and the suggestion row says
    the rewrite was used and whether the annotator's text differs from it."""
    project = _correction_project("rw-use", researcher, annotator, [ANSWER])
    (response,) = Response.objects.filter(project=project)
    _verdict(response)
    client = api_client_for(annotator)
    task = _next(client, project)
    suggestion = task["ai_suggestion"]["responses"][str(response.pk)]
    assert suggestion["rewrite"] == REWRITE
    segments = [{**s, "type": "other"} for s in suggestion["rewrite_segments"]]
    green, right = ANSWER.index("green"), ANSWER.index("right")
    assert segments == [
        {"start": green, "end": green + 10, "original": "green star", "replacement": "blue circle", "type": "other"},
        {
            "start": right,
            "end": right + 5,
            "original": "right",
            "replacement": "right, near the cube",
            "type": "other",
        },
    ]
    if edit:
        segments[0]["replacement"] = "blue square"
    answer = _submit(client, project, task, segments=segments, ai_rewrite_used=True)
    assert answer.status_code == 201, answer.content
    expected = REWRITE if not edit else REWRITE.replace("circle", "square")
    correction = Correction.objects.get()
    assert correction.corrected_text == expected == answer.json()["corrected_text"]
    use = AISuggestionUse.objects.get()
    assert (use.rewrite_used, use.rewrite_edited, use.took) == (True, edit, True)
    assert use.suggested["rewrite"] == REWRITE
    # The person's correction is the pair of this answer; the labeler's rewrite pair steps aside for it
    # (once the submit's stale pairs are re-derived, as a snapshot does).
    services.preference_pairs_refresh_stale(project=project)
    (pair,) = PreferencePair.objects.filter(item__project=project)
    assert (pair.source, pair.chosen_text, pair.rejected_text) == ("correction", expected, ANSWER)
    assert pair.rejected_spans == [[green, green + 10], [right, right + 5]]


def test_marking_by_hand_records_the_rewrite_as_not_used(researcher, annotator, api_client_for):
    """Without "Use it" the row says the rewrite was offered but not used (edited: not applicable)."""
    project = _correction_project("rw-hand", researcher, annotator, [ANSWER])
    (response,) = Response.objects.filter(project=project)
    _verdict(response)
    client = api_client_for(annotator)
    task = _next(client, project)
    start = ANSWER.index("green")
    segment = {"start": start, "end": start + 5, "type": "attribute", "replacement": "blue", "original": "green"}
    assert _submit(client, project, task, segments=[segment]).status_code == 201
    use = AISuggestionUse.objects.get()
    assert (use.rewrite_used, use.rewrite_edited, use.took) == (False, None, True)


def test_saying_a_rewrite_was_used_where_none_can_be_shown_is_a_400_naming_the_field(
    researcher, annotator, api_client_for
):
    """A pairwise project, or a correction project that hides suggestions, refuses `ai_rewrite_used` before
    anything is stored; a rewrite gone from the verdict by submit time is recorded as not used."""
    hidden = _correction_project("rw-hidden", researcher, annotator, [ANSWER], show=False)
    _verdict(Response.objects.get(project=hidden))
    client = api_client_for(annotator)
    task = _next(client, hidden)
    answer = _submit(client, hidden, task, segments=[], ai_rewrite_used=True)
    assert answer.status_code == 400
    assert answer.json()["extra"]["field"] == "ai_rewrite_used" and "ai_rewrite_used" in answer.json()["message"]
    assert Correction.objects.count() == 0

    shown = _correction_project("rw-gone", researcher, annotator, [ANSWER])
    response = Response.objects.get(project=shown)
    _verdict(response)
    task = _next(client, shown)
    AIFeedback.objects.filter(response=response).update(rewrite={})  # a later labeler run wrote none
    assert _submit(client, shown, task, segments=[], ai_rewrite_used=True).status_code == 201
    assert AISuggestionUse.objects.get().rewrite_used is False


# ------------------------------------------------------------------------------------------ verdict detail


def test_each_claims_source_and_span_are_stored_and_shown(researcher, annotator, api_client_for):
    """The task's suggestion carries every claim's P(yes), where it came from and its span in the answer;
    the doubted spans recorded beside the correction are those stored spans."""
    project = _correction_project("rw-detail", researcher, annotator, [ANSWER])
    (response,) = Response.objects.filter(project=project)
    _verdict(response)
    feedback = AIFeedback.objects.get()
    assert feedback.sources == ["logits", "logits"]
    assert feedback.claim_spans == [[0, 25], [27, 55]]
    client = api_client_for(annotator)
    task = _next(client, project)
    claims = task["ai_suggestion"]["responses"][str(response.pk)]["claims"]
    assert claims == [
        {"claim": "A red cube is on the left", "p_yes": 0.91, "source": "logits", "span": [0, 25]},
        {"claim": "A green star is on the right", "p_yes": 0.12, "source": "logits", "span": [27, 55]},
    ]
    assert _submit(client, project, task, segments=[]).status_code == 201
    assert AISuggestionUse.objects.get().suggested["doubted"] == [[27, 55]]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sources": ["logits", "guessed"]}, "sources"),
        ({"sources": ["logits"]}, None),  # one entry per claim
        ({"claim_spans": [[0, 25], [50, 99]]}, "claim_spans"),
        ({"claim_spans": [[0, 25], [5, 5]]}, "claim_spans"),
    ],
)
def test_bad_sources_or_spans_are_refused_naming_them(researcher, annotator, fields, field):
    from loupe.errors import ApplicationError

    project = _correction_project("rw-bad", researcher, annotator, [ANSWER])
    response = Response.objects.get(project=project)
    with pytest.raises(ApplicationError) as raised:
        services.ai_feedback_record(response=response, labeler_model="m", claims=["a", "b"], p_yes=[0.5, 0.5], **fields)
    assert (raised.value.extra or {}).get("field") == field
    assert AIFeedback.objects.count() == 0


# ------------------------------------------------------------------------------------------ pairs and snapshots


def _rows(snapshot):
    from annotation.selectors import snapshot_rows

    return list(snapshot_rows(snapshot=snapshot))


def test_rewrite_pairs_reach_correction_snapshots_by_default_and_the_dense_export_with_their_spans(
    researcher, annotator, tmp_path
):
    """Two answers: one a person corrected (its rewrite gives no pair), one nobody did (its rewrite is an AI
    pair with the diff's spans). Snapshots keep it by default in a correction project, leave it out when asked,
    and length balancing does not drop it though the rewrite is much shorter; dense-jsonl writes its spans."""
    short = "A red cube."
    project = _correction_project("rw-snap", researcher, annotator, [ANSWER, ANSWER + " It is very large and shiny."])
    corrected, alone = Response.objects.filter(project=project).order_by("position")
    _verdict(corrected)
    feedback = services.ai_feedback_record(response=alone, labeler_model="tiny-labeler", claims=["x"], p_yes=[0.1])
    ai_feedback_rewrite_record(feedback=feedback, text=short)
    (person,) = people("rw-fixer", 1)
    start = ANSWER.index("green")
    correct(
        corrected,
        person,
        [{"start": start, "end": start + 5, "type": "attribute", "replacement": "blue"}],
        ANSWER.replace("green", "blue"),
    )
    services.preference_pairs_refresh(item=corrected.item)
    (stored,) = PreferencePair.objects.filter(source="ai")
    assert (stored.chosen_text, stored.rejected_text, stored.chosen_response_id) == (short, alone.text, None)

    snapshot = services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(test_fraction=0)
    )
    assert snapshot.filters["ai_rewrite_pairs"] is True and snapshot.stats["ai_rewrite_pairs"] == 1
    (ai_row,) = [r for r in _rows(snapshot) if r["source"] == "ai"]
    rejected_spans, chosen_spans = changed_spans(alone.text, short)
    assert (ai_row["chosen"], ai_row["rejected"]) == (short, alone.text)
    assert (ai_row["rejected_spans"], ai_row["chosen_spans"]) == (
        [list(s) for s in rejected_spans],
        [list(s) for s in chosen_spans],
    )
    assert ai_row["rejected_spans"] != []
    assert {r["source"] for r in _rows(snapshot)} == {"ai", "correction"}

    out = services.snapshot_export(snapshot=snapshot, export_format="dense-jsonl", out=tmp_path / "dense")
    (exported,) = [p for p in read_pair_rows_jsonl(out / "pairs.jsonl") if p.source == "ai"]
    assert [list(s) for s in exported.rejected_spans] == ai_row["rejected_spans"]
    assert (exported.chosen, exported.rejected) == (short, alone.text)

    without = services.snapshot_create(
        project=project,
        created_by=None,
        snapshot_filter=services.SnapshotFilter(test_fraction=0, ai_rewrite_pairs=False),
    )
    assert [r["source"] for r in _rows(without)] == ["correction"]
    # The same holds when the pairs are derived from a subset of the feedback (here: only the labeler's).
    only_ai = services.snapshot_create(
        project=project,
        created_by=None,
        snapshot_filter=services.SnapshotFilter(test_fraction=0, annotators=("ai:tiny-labeler",)),
    )
    # No person's correction is in this scope, so the first answer's rewrite is a pair too.
    assert sorted((r["chosen"], r["rejected"]) for r in _rows(only_ai)) == sorted(
        [(REWRITE, ANSWER), (short, alone.text)]
    )


def test_rewrite_pairs_are_off_by_default_elsewhere_and_the_api_and_cli_can_ask_for_them(researcher, api_client_for):
    """In a pairwise project the rewrite pair is stored but a default snapshot leaves it out; the API's and
    the CLI's `ai_rewrite_pairs` keep it."""
    from django.core.management import call_command

    project = services.project_create(slug="rw-pairwise", kind="pairwise", created_by=researcher)
    item = Item.objects.create(project=project, external_id="p1", prompt="Describe.")
    good, bad = Response.objects.bulk_create(
        [Response(item=item, position=0, text="A blue circle."), Response(item=item, position=1, text=ANSWER)]
    )
    services.ai_feedback_record(response=good, labeler_model="L", claims=["a"], p_yes=[0.9])
    feedback = services.ai_feedback_record(response=bad, labeler_model="L", claims=["a", "b"], p_yes=[0.9, 0.1])
    ai_feedback_rewrite_record(feedback=feedback, text=REWRITE)
    default = services.snapshot_create(
        project=project, created_by=None, snapshot_filter=services.SnapshotFilter(test_fraction=0)
    )
    assert default.filters["ai_rewrite_pairs"] is False
    assert [(r["chosen"], r["rejected"]) for r in _rows(default)] == [("A blue circle.", ANSWER)]

    client = api_client_for(researcher)
    answer = client.post(
        f"/api/v1/projects/{project.slug}/snapshots/", {"test_fraction": 0, "ai_rewrite_pairs": True}, format="json"
    )
    assert answer.status_code == 201, answer.content
    with_rewrites = _rows(DatasetSnapshot.objects.get(pk=answer.json()["id"]))
    assert sorted((r["chosen"], r["rejected"]) for r in with_rewrites) == sorted(
        [("A blue circle.", ANSWER), (REWRITE, ANSWER)]
    )
    assert call_command("snapshot", "--project", project.slug, "--test-fraction", "0", "--ai-rewrite-pairs") is None
    bad_value = client.post(f"/api/v1/projects/{project.slug}/snapshots/", {"ai_rewrite_pairs": "maybe"}, format="json")
    assert bad_value.status_code == 400 and "ai_rewrite_pairs" in json.dumps(bad_value.json())
