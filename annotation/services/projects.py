"""Projects and their members."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import (
    DEFAULT_HALLUCINATION_TYPES,
    DEFAULT_RATING_LEVELS,
    Membership,
    Project,
    ProjectKind,
    Role,
)
from loupe.errors import ApplicationError


@transaction.atomic
def project_create(
    *,
    slug: str,
    kind: str,
    created_by: AbstractBaseUser | None,
    name: str = "",
    instructions: str = "",
    overlap: int = 1,
) -> Project:
    if kind not in ProjectKind.values:
        raise ApplicationError(f"Unknown project kind {kind!r}; choose one of {', '.join(ProjectKind.values)}.")
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"A project with the slug {slug!r} already exists.")
    project = Project(
        slug=slug,
        name=name or slug,
        kind=kind,
        instructions=instructions,
        overlap=overlap,
        rating_levels=list(DEFAULT_RATING_LEVELS) if kind == ProjectKind.RATING else [],
        hallucination_types=list(DEFAULT_HALLUCINATION_TYPES) if kind == ProjectKind.CORRECTION else [],
        created_by=created_by,
    )
    project.full_clean()
    project.save()
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Role.MANAGER)
    return project


@transaction.atomic
def project_member_add(*, project: Project, user: AbstractBaseUser, role: str = Role.ANNOTATOR) -> Membership:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership
