"""The task queue (leases of items to annotators) and the submission of annotations."""

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    Item,
    PairwiseChoice,
    PairwiseJudgment,
    Project,
    ProjectKind,
)
from annotation.services.pairs import preference_pairs_refresh
from loupe.errors import ApplicationError


def _active_assignments(now: datetime) -> Q:
    return Q(status=AssignmentStatus.SUBMITTED) | Q(status=AssignmentStatus.LEASED, lease_expires_at__gt=now)


@transaction.atomic
def assignment_next(*, project: Project, annotator: AbstractBaseUser) -> Assignment | None:
    """Lease the next item to `annotator`, or give back the one they already hold; None when none is left.

    An item is open while fewer than `project.overlap` annotators have submitted it or hold an unexpired
    lease on it; nobody is given the same item twice. The transaction takes the write lock first
    (IMMEDIATE on SQLite, a row lock on PostgreSQL), so two annotators asking at once never get the same slot.
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.LOUPE_LEASE_SECONDS)
    held = (
        Assignment.objects.select_for_update()
        .filter(item__project=project, annotator=annotator, status=AssignmentStatus.LEASED)
        .order_by("id")
        .first()
    )
    if held is not None:
        held.lease_expires_at = lease_until
        held.save(update_fields=["lease_expires_at"])
        return held
    candidates = (
        Item.objects.select_for_update(skip_locked=True)
        .filter(project=project, done_count__lt=project.overlap)
        .exclude(assignments__annotator=annotator)
        .order_by("id")
    )
    for item in candidates[:50]:
        active = Assignment.objects.filter(item=item).filter(_active_assignments(now)).count()
        if active >= project.overlap:
            continue
        response_ids = list(item.responses.order_by("position").values_list("id", flat=True))
        shown = response_ids[:2] if project.kind == ProjectKind.PAIRWISE else response_ids
        random.SystemRandom().shuffle(shown)
        return Assignment.objects.create(
            item=item, annotator=annotator, lease_expires_at=lease_until, shown_order=shown
        )
    return None


def _assignment_for_submit(*, assignment_id: int, annotator: AbstractBaseUser) -> Assignment:
    assignment = Assignment.objects.select_for_update().select_related("item__project").filter(pk=assignment_id).first()
    if assignment is None or assignment.annotator_id != annotator.pk:
        raise ApplicationError("This task is not yours.", {"assignment": assignment_id})
    return assignment


@transaction.atomic
def pairwise_judgment_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    choice: str,
    client_request_id: str,
    strength: int = 1,
    reason: str = "",
    time_spent_ms: int = 0,
) -> PairwiseJudgment:
    """Store a pairwise choice once: a repeated request (same client_request_id) returns the first one."""
    repeated = PairwiseJudgment.objects.filter(annotator=annotator, client_request_id=client_request_id).first()
    if repeated is not None:
        return repeated
    if choice not in PairwiseChoice.values:
        raise ApplicationError(f"Unknown choice {choice!r}; choose one of {', '.join(PairwiseChoice.values)}.")
    if strength not in (1, 2):
        raise ApplicationError("Strength is 1 (slightly better) or 2 (clearly better).")
    assignment = _assignment_for_submit(assignment_id=assignment_id, annotator=annotator)
    if assignment.item.project.kind != ProjectKind.PAIRWISE:
        raise ApplicationError("This task is not a pairwise comparison.")
    if len(assignment.shown_order) < 2:
        raise ApplicationError("This item has fewer than two responses to compare.")
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise ApplicationError("This task was already submitted.", {"assignment": assignment.pk})
    response_a_id, response_b_id = assignment.shown_order[:2]
    try:
        with transaction.atomic():
            judgment = PairwiseJudgment.objects.create(
                item=assignment.item,
                annotator=annotator,
                assignment=assignment,
                client_request_id=client_request_id,
                response_a_id=response_a_id,
                response_b_id=response_b_id,
                choice=choice,
                strength=strength,
                reason=reason,
                time_spent_ms=time_spent_ms,
            )
    except IntegrityError as error:
        raise ApplicationError("You have already judged this item.") from error
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.submitted_at = timezone.now()
    assignment.save(update_fields=["status", "submitted_at"])
    Item.objects.filter(pk=assignment.item_id).update(done_count=F("done_count") + 1)
    preference_pairs_refresh(item=assignment.item)
    return judgment
