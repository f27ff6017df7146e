"""Reads for the annotation app: progress, the tasks an annotator sees, and the project dashboard."""

import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from annotation.formats.common import json_loads
from annotation.models import (
    AIFeedback,
    Assignment,
    AssignmentStatus,
    CrowdParticipant,
    DatasetSnapshot,
    Item,
    Membership,
    Project,
    ProjectKind,
    Response,
    Role,
    Visibility,
)
from annotation.models import annotation_model_for as annotation_model
from annotation.models import unit_model_for as unit_model


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    projects = Project.objects.order_by("slug")
    if user.is_staff:
        return projects
    return projects.filter(memberships__user=user)


def public_projects() -> QuerySet[Project]:
    return Project.objects.filter(visibility=Visibility.PUBLIC).order_by("slug")


def project_progress(*, project: Project, user: AbstractBaseUser) -> dict[str, int]:
    """Tasks fully annotated, all tasks, and how many this user has submitted."""
    units = unit_model(project).objects.filter(project=project)
    return {
        "done": units.filter(done_count__gte=project.overlap).count(),
        "total": units.count(),
        "mine": Assignment.objects.filter(project=project, annotator=user, status=AssignmentStatus.SUBMITTED).count(),
    }


def project_overview(*, project: Project, user: AbstractBaseUser) -> dict[str, Any]:
    """What the project list shows per project: `project_progress`, the percent finished and the time of the
    last submitted answer by anyone (None before the first)."""
    progress = project_progress(project=project, user=user)
    last = Assignment.objects.filter(project=project, status=AssignmentStatus.SUBMITTED).aggregate(
        last=Max("submitted_at")
    )["last"]
    percent = round(100 * progress["done"] / progress["total"]) if progress["total"] else 0
    return {**progress, "percent": percent, "last_activity": last}


def project_members(*, project: Project) -> list[Membership]:
    """The project's members with their accounts, managers first, then by username."""
    order = {Role.MANAGER: 0, Role.REVIEWER: 1, Role.ANNOTATOR: 2}
    members = list(Membership.objects.filter(project=project).select_related("user"))
    return sorted(members, key=lambda member: (order.get(member.role, 3), member.user.get_username()))


def task_texts(*, item_id: int, response_ids: list[int]) -> tuple[str, str, list[tuple[int, str]]]:
    """An item's prompt and image and the texts of the given responses in that order.

    Plain SQL (one read of primary keys, the responses joined to their item's row): this runs on every next
    task, where the ORM's query compiler would cost more than the read."""
    items, responses = (connection.ops.quote_name(m._meta.db_table) for m in (Item, Response))
    marks = ", ".join(["%s"] * len(response_ids)) or "NULL"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.prompt, i.image, r.id, r.text FROM {items} i "  # noqa: S608
            f"LEFT JOIN {responses} r ON r.id IN ({marks}) WHERE i.id = %s",
            [*response_ids, item_id],
        )
        found = cursor.fetchall()
    prompt, image = found[0][0], found[0][1]
    texts = {pk: text for _prompt, _image, pk, text in found if pk is not None}
    return prompt, image, [(pk, texts[pk]) for pk in response_ids if pk in texts]


def ai_suggestions(*, response_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The AI labeler's latest verdict on each response that has one, shaped by
    `selectors_labeler.ai_suggestion_of`: score, claims with P(yes), its source and span, and the rewrite."""
    from annotation.selectors_labeler import ai_suggestion_of

    latest: dict[int, AIFeedback] = {}
    for feedback in AIFeedback.objects.filter(response_id__in=response_ids).select_related("response").order_by("id"):
        latest[feedback.response_id] = feedback
    return {response_id: ai_suggestion_of(feedback) for response_id, feedback in latest.items()}


def annotation_answer(*, annotation: Any, kind: str) -> dict[str, Any]:
    """A stored annotation shaped as the submit API takes it."""
    if kind == ProjectKind.PAIRWISE:
        return {"choice": annotation.choice, "strength": annotation.strength, "reason": annotation.reason}
    if kind == ProjectKind.CORRECTION:
        return {"segments": annotation.segments, "corrected_text": annotation.corrected_text}
    if kind == ProjectKind.RATING:
        return {"level": annotation.level}
    return {"order": annotation.order}


def assignment_answer(*, assignment: Assignment) -> dict[str, Any] | None:
    """The annotator's stored answer to a submitted task (None for a task not answered)."""
    if assignment.status != AssignmentStatus.SUBMITTED:
        return None
    annotation = annotation_model(assignment.project).objects.filter(assignment=assignment).first()
    return None if annotation is None else annotation_answer(annotation=annotation, kind=assignment.project.kind)


def assignment_previous(
    *, project: Project, annotator: AbstractBaseUser, before: Assignment | None = None
) -> Assignment | None:
    """The annotator's task submitted just before `before` (their latest when `before` is not submitted)."""
    mine = Assignment.objects.filter(project=project, annotator=annotator, status=AssignmentStatus.SUBMITTED)
    if before is not None and before.status == AssignmentStatus.SUBMITTED and before.submitted_at is not None:
        mine = mine.filter(
            Q(submitted_at__lt=before.submitted_at) | Q(submitted_at=before.submitted_at, pk__lt=before.pk)
        )
    return mine.select_related("project", "item").order_by("-submitted_at", "-pk").first()


# -------------------------------------------------------------------------------------------- dashboard


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 1)


def project_dashboard(*, project: Project, hours: int = 24) -> dict[str, Any]:
    """What a researcher watches: task progress, throughput per hour, time per task, and per annotator."""
    now = timezone.now()
    units = unit_model(project).objects.filter(project=project)
    histogram = dict(units.values_list("done_count").annotate(n=Count("pk")).order_by("done_count"))
    total = sum(histogram.values())
    finished = sum(n for done, n in histogram.items() if done >= project.overlap)
    assignments = Assignment.objects.filter(project=project)
    live_leases = assignments.filter(status=AssignmentStatus.LEASED, lease_expires_at__gt=now).count()
    since = now - timedelta(hours=hours)
    per_hour_rows = (
        assignments.filter(status=AssignmentStatus.SUBMITTED, submitted_at__gte=since)
        .annotate(hour=TruncHour("submitted_at"))
        .values("hour")
        .annotate(n=Count("pk"))
        .order_by("hour")
    )
    by_hour = {row["hour"]: row["n"] for row in per_hour_rows}
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    per_hour = [
        {"hour": first_hour + timedelta(hours=h), "n": by_hour.get(first_hour + timedelta(hours=h), 0)}
        for h in range(hours)
    ]
    times: dict[int, list[int]] = defaultdict(list)
    for annotator_id, spent in (
        annotation_model(project)
        .objects.filter(assignment__project=project)
        .values_list("annotator_id", "time_spent_ms")
    ):
        times[annotator_id].append(spent)
    status_counts: dict[int, dict[str, int]] = defaultdict(dict)
    for annotator_id, status, n in assignments.values_list("annotator_id", "status").annotate(n=Count("pk")).order_by():
        status_counts[annotator_id][status] = n
    last = dict(assignments.values_list("annotator_id").annotate(last=Max("submitted_at")).order_by())
    users = {user.pk: user for user in get_user_model().objects.filter(pk__in=status_counts)}
    crowd = set(CrowdParticipant.objects.filter(user_id__in=status_counts).values_list("user_id", flat=True))
    annotators = sorted(
        (
            {
                "username": users[annotator_id].get_username() if annotator_id in users else "?",
                "crowd": annotator_id in crowd,
                "submitted": counts.get(AssignmentStatus.SUBMITTED, 0),
                "skipped": counts.get(AssignmentStatus.SKIPPED, 0),
                "expired": counts.get(AssignmentStatus.EXPIRED, 0),
                "leased": counts.get(AssignmentStatus.LEASED, 0),
                "median_ms": _median(times.get(annotator_id, [])),
                "median_s": _seconds(_median(times.get(annotator_id, []))),
                "last_submitted_at": last.get(annotator_id),
            }
            for annotator_id, counts in status_counts.items()
        ),
        key=lambda row: (-row["submitted"], row["username"]),
    )
    all_times = [t for values in times.values() for t in values]
    last_hour = assignments.filter(status=AssignmentStatus.SUBMITTED, submitted_at__gte=now - timedelta(hours=1))
    return {
        "total": total,
        "finished": finished,
        "in_progress": sum(n for done, n in histogram.items() if 0 < done < project.overlap),
        "untouched": histogram.get(0, 0),
        "live_leases": live_leases,
        "histogram": [{"done": done, "n": n} for done, n in sorted(histogram.items())],
        "annotations": sum(len(values) for values in times.values()),
        "last_hour": last_hour.count(),
        "per_hour": per_hour,
        "median_ms": _median(all_times),
        "median_s": _seconds(_median(all_times)),
        "annotators": annotators,
    }


def project_tasks_page(*, project: Project, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    """One page of the project's tasks in queue order with their progress."""
    model = unit_model(project)
    units = model.objects.filter(project=project).order_by("pk")[offset : offset + limit]
    if model is Item:
        return [
            {
                "id": u.pk,
                "item_id": u.pk,
                "external_id": u.external_id,
                "text": u.prompt,
                "done": u.done_count,
                "taken": u.taken_count,
            }
            for u in units
        ]
    return [
        {
            "id": u.pk,
            "item_id": u.item_id,
            "external_id": f"{u.item.external_id} #{u.position}",
            "text": u.text,
            "done": u.done_count,
            "taken": u.taken_count,
        }
        for u in units.select_related("item")
    ]


def snapshot_rows(*, snapshot: DatasetSnapshot, split: str | None = None) -> Iterator[dict]:
    """The frozen rows of a snapshot, streamed from its file."""
    with open(snapshot.path, "rb") as handle:
        for line in handle:
            row = json_loads(line)
            if split is None or row["split"] == split:
                yield row
