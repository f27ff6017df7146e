"""Recording what annotators did with the AI labeler's suggestion (design.md §8).

Where a project shows the labeler's suggestions, every pairwise judgment and correction submitted also
gets an `AISuggestionUse` row saying what the labeler suggested and whether the annotator took it; the
annotation itself is never changed by the suggestion. Which answer the labeler prefers and which spans it
doubts are computed here from `AIFeedback` the same way the annotate page shows them (`loupe/annotate.js`:
a claim is doubted when P(yes) <= 0.5, marked by its stored span, or found in the answer from left to
right where the labeler stored none).

On a correction page the labeler's rewrite is offered as a suggested correction: "Use it" marks the
segments that turn the answer into the rewrite (`pair_rules.rewrite_segments`), the annotator edits them
and submits them as any correction. The page says it took the rewrite (`rewrite_used`); the row records
that, and whether the corrected text submitted differs from the rewrite (`rewrite_edited`). A page that
says it took a rewrite where none is stored any more (a labeler run replaced the verdict meanwhile) is
recorded as not having taken one: what it took is no longer known.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from annotation import selectors
from annotation.models import AISuggestionUse, Correction, PairwiseJudgment, Project, ProjectKind
from loupe.errors import ApplicationError

DOUBT_AT_MOST = 0.5


def doubted_spans(*, text: str, claims: list[dict[str, Any]]) -> list[list[int]]:
    """Character spans `[start, end)` of the claims the labeler doubted, as the annotate page marks them: a
    claim's stored span, else where its text is found after the claim before it."""
    spans, at = [], 0
    for claim in claims:
        stored = claim.get("span")
        if stored is not None:
            start, end = int(stored[0]), int(stored[1])
        else:
            start = text.find(claim["claim"], at)
            if start < 0:
                continue  # a claim the labeler reworded
            end = start + len(claim["claim"])
        at = max(at, end)
        if claim["p_yes"] is not None and claim["p_yes"] <= DOUBT_AT_MOST:
            spans.append([start, end])
    return spans


def _pairwise(judgment: PairwiseJudgment) -> tuple[str, dict[str, Any], bool] | None:
    verdicts = selectors.ai_suggestions(response_ids=[judgment.response_a_id, judgment.response_b_id])
    a, b = verdicts.get(judgment.response_a_id), verdicts.get(judgment.response_b_id)
    if a is None or b is None or a["score"] == b["score"]:
        return None  # no preference was shown
    prefers = "a" if a["score"] > b["score"] else "b"
    response = judgment.response_a_id if prefers == "a" else judgment.response_b_id
    return a["labeler_model"], {"prefers": response, "side": prefers}, judgment.choice == prefers


def _correction(correction: Correction) -> tuple[str, dict[str, Any], bool] | None:
    verdict = selectors.ai_suggestions(response_ids=[correction.response_id]).get(correction.response_id)
    if verdict is None:
        return None
    spans = doubted_spans(text=correction.response.text, claims=verdict["claims"])
    marked = [(int(s["start"]), int(s["end"])) for s in correction.segments or []]
    if spans:
        took = any(start < end_d and start_d < end for start, end in marked for start_d, end_d in spans)
    else:
        took = not marked
    suggested: dict[str, Any] = {"doubted": spans}
    if verdict.get("rewrite"):
        suggested["rewrite"] = verdict["rewrite"]
    return verdict["labeler_model"], suggested, took


def rewrite_use_check(*, project: Project, rewrite_used: bool) -> None:
    """ApplicationError naming `ai_rewrite_used` when a submit says it took a rewrite the project cannot
    have shown (not a correction project, or suggestions are off); checked before the answer is stored."""
    if rewrite_used and (project.kind != ProjectKind.CORRECTION or not project.show_ai_suggestions):
        raise ApplicationError(
            "ai_rewrite_used: only a correction project that shows the AI labeler's suggestions offers a "
            "suggested correction to use.",
            {"field": "ai_rewrite_used"},
        )


@transaction.atomic
def ai_suggestion_use_record(
    *, project: Project, annotation: Any, rewrite_used: bool = False
) -> AISuggestionUse | None:
    """Record whether the annotation followed the suggestion shown with it; None where none was shown.
    `rewrite_used`: the correction page says the annotator took the labeler's rewrite ("Use it")."""
    if not project.show_ai_suggestions:
        return None
    if project.kind == ProjectKind.PAIRWISE and isinstance(annotation, PairwiseJudgment):
        found = _pairwise(annotation)
    elif project.kind == ProjectKind.CORRECTION and isinstance(annotation, Correction):
        found = _correction(annotation)
    else:
        return None
    if found is None:
        return None
    labeler_model, suggested, took = found
    rewrite = suggested.get("rewrite")
    used = bool(rewrite_used and rewrite)
    use, _ = AISuggestionUse.objects.update_or_create(
        kind=project.kind,
        annotation_id=annotation.pk,
        defaults={
            "project": project,
            "item_id": annotation.item_id,
            "annotator_id": annotation.annotator_id,
            "labeler_model": labeler_model,
            "suggested": suggested,
            "took": took,
            "rewrite_used": used,
            "rewrite_edited": (annotation.corrected_text != rewrite) if used else None,
        },
    )
    return use
