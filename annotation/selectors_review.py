"""Reads for the review of annotations (issue 17): an annotation as the review stream shows it, the outcome
of an annotator's reviewed work, and the reviewer's version of each annotation for pairs and snapshots.

A review is current while the annotation is as it was reviewed (`AnnotationReview.annotation_updated_at`);
an annotator who changes their answer afterwards makes it stale, and the answer is unreviewed again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.urls import reverse

from annotation.models import (
    AnnotationBase,
    AnnotationReview,
    Project,
    ProjectKind,
    Response,
    ReviewDecision,
    annotation_model_for,
)
from annotation.selectors import annotation_answer
from loupe.rows import id_list

# The attribute of `ItemFeedback` that holds each kind's annotations.
_FEEDBACK_ATTRIBUTES = {
    ProjectKind.PAIRWISE: "pairwise",
    ProjectKind.CORRECTION: "corrections",
    ProjectKind.RATING: "ratings",
    ProjectKind.RANKING: "rankings",
}
KEPT_DECISIONS = (ReviewDecision.ACCEPTED, ReviewDecision.EDITED)
MY_REVIEWS_LIMIT = 50


def review_is_current(review: AnnotationReview | None, annotation: AnnotationBase) -> bool:
    """Whether `review` is a decision on the annotation as it is now (not on an answer changed since)."""
    return review is not None and review.annotation_updated_at >= annotation.updated_at


def unreviewed_annotations(*, project: Project, reviewer: AbstractBaseUser) -> QuerySet:
    """The project's annotations the reviewer may review that have no current review, oldest first;
    never the reviewer's own."""
    model = annotation_model_for(project)
    current = AnnotationReview.objects.filter(
        kind=project.kind, annotation_id=OuterRef("pk"), annotation_updated_at__gte=OuterRef("updated_at")
    )
    return (
        model.objects.filter(item__project=project)
        .exclude(annotator_id=reviewer.pk)
        .filter(~Exists(current))
        .order_by("pk")
    )


def review_payload(*, project: Project, annotation: AnnotationBase) -> dict[str, Any]:
    """An annotation as the review stream shows it: the item, the answers judged, the annotator's answer
    and the current review (if the annotation was reviewed before)."""
    item = annotation.item
    if project.kind == ProjectKind.PAIRWISE:
        response_ids = [annotation.response_a_id, annotation.response_b_id]
    elif project.kind == ProjectKind.RANKING:
        response_ids = list(annotation.order)
    else:
        response_ids = [annotation.response_id]
    texts = dict(Response.objects.filter(pk__in=response_ids).values_list("pk", "text"))
    review = AnnotationReview.objects.filter(kind=project.kind, annotation_id=annotation.pk).first()
    current = review if review_is_current(review, annotation) else None
    return {
        "annotation_id": annotation.pk,
        "kind": project.kind,
        "item_id": item.pk,
        "external_id": item.external_id,
        "prompt": item.prompt,
        "image_url": reverse("item-image", args=[item.pk]) if item.image else None,
        "annotator": get_user_model().objects.filter(pk=annotation.annotator_id).values_list("username", flat=True)[0],
        "submitted_at": annotation.updated_at,
        "responses": [{"id": pk, "text": texts[pk]} for pk in response_ids if pk in texts],
        "answer": annotation_answer(annotation=annotation, kind=project.kind),
        "scale": list(project.rating_levels if project.kind == ProjectKind.RATING else project.hallucination_types),
        "review": None
        if current is None
        else {"decision": current.decision, "comment": current.comment, "edited": current.edited or None},
    }


def review_outcome(*, project: Project, annotator: AbstractBaseUser) -> dict[str, Any]:
    """What reviewers decided on this annotator's work in the project: counts per decision and the latest
    reviews (newest first) with the reviewer's comment. `stale`: the annotator changed the answer since."""
    reviews = AnnotationReview.objects.filter(project=project, annotator_id=annotator.pk)
    counts = dict(reviews.values_list("decision").annotate(n=Count("id")).order_by())
    latest = list(reviews.select_related("reviewer").order_by("-updated_at", "-id")[:MY_REVIEWS_LIMIT])
    model = annotation_model_for(project)
    annotations = model.objects.select_related("item").in_bulk([review.annotation_id for review in latest])
    rows = []
    for review in latest:
        annotation = annotations.get(review.annotation_id)
        if annotation is None:  # the annotation was deleted with its item
            continue
        rows.append(
            {
                "annotation_id": review.annotation_id,
                "external_id": annotation.item.external_id,
                "prompt": annotation.item.prompt,
                "decision": review.decision,
                "comment": review.comment,
                "edited": review.edited or None,
                "reviewer": review.reviewer.username,
                "reviewed_at": review.updated_at,
                "stale": not review_is_current(review, annotation),
            }
        )
    return {
        "accepted": counts.get(ReviewDecision.ACCEPTED, 0),
        "edited": counts.get(ReviewDecision.EDITED, 0),
        "rejected": counts.get(ReviewDecision.REJECTED, 0),
        "reviews": rows,
    }


def feedback_reviewed(feedback: Iterable[Any], *, accepted_only: bool = False) -> list[Any]:
    """The items' feedback (`preference_pairs.ItemFeedback`) with each annotation a reviewer edited in the
    reviewer's version (the stored annotation stays as its annotator gave it; the objects here are changed
    in memory only). `accepted_only`: only annotations whose current review accepted or edited them, and
    no AI feedback or imported aggregate counts (nobody reviews those)."""
    entries = list(feedback)
    for kind, attribute in _FEEDBACK_ATTRIBUTES.items():
        ids = [row.pk for entry in entries for row in getattr(entry, attribute)]
        reviews = (
            {r.annotation_id: r for r in AnnotationReview.objects.filter(kind=kind, annotation_id__in=id_list(ids))}
            if ids
            else {}
        )
        if not reviews and not accepted_only:
            continue  # nothing reviewed: every annotation counts as its annotator gave it
        for entry in entries:
            kept = []
            for row in getattr(entry, attribute):
                review = reviews.get(row.pk)
                current = review_is_current(review, row)
                if current and review.decision == ReviewDecision.EDITED:
                    for name, value in review.edited.items():
                        setattr(row, name, value)
                if not accepted_only or (current and review.decision in KEPT_DECISIONS):
                    kept.append(row)
            setattr(entry, attribute, kept)
    if accepted_only:
        for entry in entries:
            entry.ai = []
    return entries


def review_card(*, project: Project, user: AbstractBaseUser) -> dict[str, Any]:
    """What the project page shows about review: whether `user` may open the review stream, and the
    outcome of their own reviewed work (None while none of it was reviewed)."""
    from annotation.permissions import may_review

    outcome = review_outcome(project=project, annotator=user) if user.is_authenticated else None
    reviewed = outcome is not None and (outcome["accepted"] + outcome["edited"] + outcome["rejected"]) > 0
    return {"may_review": may_review(user=user, project=project), "outcome": outcome if reviewed else None}
