"""Reads for the annotation app."""

import json
from collections.abc import Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.models import Assignment, AssignmentStatus, DatasetSnapshot, Item, Project, Response


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    projects = Project.objects.order_by("slug")
    if user.is_staff:
        return projects
    return projects.filter(memberships__user=user)


def project_progress(*, project: Project, user: AbstractBaseUser) -> dict[str, int]:
    """Items fully annotated, all items, and how many this user has submitted."""
    return {
        "done": Item.objects.filter(project=project, done_count__gte=project.overlap).count(),
        "total": Item.objects.filter(project=project).count(),
        "mine": Assignment.objects.filter(
            item__project=project, annotator=user, status=AssignmentStatus.SUBMITTED
        ).count(),
    }


def assignment_responses_shown(*, assignment: Assignment) -> list[Response]:
    """The assignment's responses in the order they are shown to its annotator."""
    by_id = {response.pk: response for response in Response.objects.filter(pk__in=assignment.shown_order)}
    return [by_id[response_id] for response_id in assignment.shown_order if response_id in by_id]


def snapshot_rows(*, snapshot: DatasetSnapshot, split: str | None = None) -> Iterator[dict]:
    """The frozen rows of a snapshot, streamed from its file."""
    with open(snapshot.path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if split is None or row["split"] == split:
                yield row
