"""The review of submitted annotations (issue 17): a reviewer takes the oldest unreviewed annotation of the
project (never their own) and accepts it, edits it or rejects it with a comment.

One `AnnotationReview` per annotation, updated when it is reviewed again: the latest decision wins. An
edit is checked exactly as a submit of that kind is (`correction_check`, `assignment.pairwise_fields`,
`rating_level`, `ranking_order`) and stored beside the annotation, never over it: the annotator's answer
stays theirs (and theirs to amend), while pairs and snapshots read the reviewer's version
(`selectors_review.feedback_reviewed`). Submits are idempotent by the reviewer's client request id; a
late retry of a request whose decision was since replaced by a newer one on the same annotation is
applied again (one row per annotation keeps only the latest request id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotation import assignment as rules
from annotation.models import (
    AnnotationBase,
    AnnotationReview,
    Item,
    Project,
    ProjectKind,
    Response,
    ReviewDecision,
    annotation_model_for,
)
from annotation.segments import SegmentError, correction_check
from annotation.selectors_review import unreviewed_annotations
from annotation.services.pair_refresh import preference_pairs_refresh_request
from loupe.errors import ApplicationError

MAX_COMMENT_CHARS = 2000


class ReviewNotFound(ApplicationError):
    status_code = 404


@dataclass(frozen=True)
class Reviewed:
    """What a review submit stored, and whether this request changed anything."""

    review: AnnotationReview
    replayed: bool


def review_next(*, project: Project, reviewer: AbstractBaseUser, after: int | None = None) -> AnnotationBase | None:
    """The oldest annotation of the project without a current review, never the reviewer's own; `after`
    (an annotation id) skips to those after it, so a reviewer can pass one by. None when none is left."""
    annotations = unreviewed_annotations(project=project, reviewer=reviewer).select_related("item")
    if after is not None:
        annotations = annotations.filter(pk__gt=after)
    return annotations.first()


def _edited_fields(*, project: Project, annotation: AnnotationBase, edited: Any) -> dict[str, Any]:
    """The reviewer's version, checked as a submit of the project's kind checks an answer: the fields the
    annotation stores (a correction's corrected text is computed here, never taken from the client)."""
    if not isinstance(edited, dict):
        raise ApplicationError("An edit needs 'edited': the changed answer as an object.", {"field": "edited"})
    try:
        if project.kind == ProjectKind.CORRECTION:
            if "segments" not in edited:
                raise ValueError("An edited correction needs 'segments' (none: no hallucination).")
            text = Response.objects.values_list("text", flat=True).get(pk=annotation.response_id)
            checked = correction_check(text=text, segments=edited["segments"], types=project.hallucination_types)
            return {"segments": checked.segments, "corrected_text": checked.corrected_text}
        if project.kind == ProjectKind.PAIRWISE:
            if "choice" not in edited:
                raise ValueError("An edited judgment needs 'choice' (a, b, tie or both_bad).")
            strength, reason = edited.get("strength", annotation.strength), edited.get("reason", annotation.reason)
            if not isinstance(strength, int) or isinstance(strength, bool) or not isinstance(reason, str):
                raise ValueError("Strength is 1 or 2 and the reason is text.")
            return rules.pairwise_fields(choice=str(edited["choice"]), strength=strength, reason=reason)
        if project.kind == ProjectKind.RATING:
            return {"level": rules.rating_level(level=edited.get("level"), levels=project.rating_levels)}
        order = edited.get("order")
        if not isinstance(order, list) or not all(isinstance(pk, int) and not isinstance(pk, bool) for pk in order):
            raise ValueError("An edited ranking needs 'order': the answers' ids, best first.")
        return {"order": rules.ranking_order(order=order, shown=annotation.order)}
    except (ValueError, SegmentError) as error:
        raise ApplicationError(str(error), {"field": "edited"}) from error


def _changes_anything(annotation: AnnotationBase, fields: dict[str, Any]) -> bool:
    return any(getattr(annotation, name) != value for name, value in fields.items())


@transaction.atomic
def review_submit(
    *,
    project: Project,
    reviewer: AbstractBaseUser,
    annotation_id: int,
    decision: str,
    client_request_id: str,
    comment: str = "",
    edited: Any = None,
) -> Reviewed:
    """Accept, edit or reject one of the project's annotations (a rejection says why in `comment`; an edit
    gives the changed answer in `edited`, in the fields the submit API takes for the kind). Reviewing
    again replaces the decision. A repeated `client_request_id` stores nothing new."""
    if not client_request_id or len(client_request_id) > 64:
        raise ApplicationError("A client request id of 1 to 64 characters is required.", {"field": "client_request_id"})
    earlier = AnnotationReview.objects.filter(reviewer=reviewer, client_request_id=client_request_id).first()
    if earlier is not None:
        if earlier.kind != project.kind or earlier.annotation_id != annotation_id:
            raise ApplicationError("This request id was already used for another review.")
        return Reviewed(earlier, replayed=True)
    if decision not in ReviewDecision.values:
        raise ApplicationError(
            f"Unknown decision {decision!r}; choose one of {', '.join(ReviewDecision.values)}.", {"field": "decision"}
        )
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise ApplicationError(f"The comment is longer than {MAX_COMMENT_CHARS} characters.", {"field": "comment"})
    if decision == ReviewDecision.REJECTED and not comment:
        raise ApplicationError("A rejection needs a comment that tells the annotator why.", {"field": "comment"})
    model = annotation_model_for(project)
    annotation = model.objects.filter(pk=annotation_id, item__project=project).first()
    if annotation is None:
        raise ReviewNotFound("No such annotation in this project.", {"field": "annotation_id"})
    if annotation.annotator_id == reviewer.pk:
        raise ApplicationError("You cannot review your own work.", {"field": "annotation_id"})
    fields: dict[str, Any] = {}
    if decision == ReviewDecision.EDITED:
        fields = _edited_fields(project=project, annotation=annotation, edited=edited)
        if not _changes_anything(annotation, fields):
            raise ApplicationError("The edit changes nothing; accept the answer instead.", {"field": "edited"})
    elif edited not in (None, {}):
        raise ApplicationError("Only an edit carries a changed answer ('edited').", {"field": "edited"})
    values = {
        "project": project,
        "annotator_id": annotation.annotator_id,
        "reviewer": reviewer,
        "decision": decision,
        "comment": comment,
        "edited": fields,
        "annotation_updated_at": annotation.updated_at,
        "client_request_id": client_request_id,
    }
    review = AnnotationReview.objects.select_for_update().filter(kind=project.kind, annotation_id=annotation_id).first()
    was_edited = review is not None and review.decision == ReviewDecision.EDITED
    try:
        with transaction.atomic():
            if review is None:
                review = AnnotationReview.objects.create(kind=project.kind, annotation_id=annotation_id, **values)
            else:
                for name, value in values.items():
                    setattr(review, name, value)
                review.save()
    except IntegrityError as error:  # another reviewer decided on it at the same moment
        raise ApplicationError("Someone reviewed this annotation just now; load it again.") from error
    if was_edited or decision == ReviewDecision.EDITED:
        # The item's stored pairs must be derived again from the version that now counts.
        Item.objects.filter(pk=annotation.item_id).update(pairs_stale=True)
        preference_pairs_refresh_request(project_id=project.pk)
    return Reviewed(review, replayed=False)
