"""Projects and their members, and the settings a researcher may change after creating one."""

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, Value, When

from annotation import assignment as rules
from annotation.models import (
    DEFAULT_HALLUCINATION_TYPES,
    DEFAULT_RATING_LEVELS,
    Membership,
    Project,
    ProjectKind,
    Role,
    Visibility,
)
from annotation.services.queue import unit_model
from loupe.errors import ApplicationError


def _scale(entries: Sequence[str] | None, *, default: Sequence[str], what: str) -> list[str]:
    try:
        return rules.scale_check(entries if entries else default, what=what)
    except ValueError as error:
        raise ApplicationError(str(error), {"field": what.replace(" ", "_")}) from error


@transaction.atomic
def project_create(
    *,
    slug: str,
    kind: str,
    created_by: AbstractBaseUser | None,
    name: str = "",
    instructions: str = "",
    overlap: int = 1,
    visibility: str = Visibility.MEMBERS,
    show_ai_suggestions: bool = False,
    rating_levels: Sequence[str] | None = None,
    hallucination_types: Sequence[str] | None = None,
    public_quota: int = 200,
    public_rate_per_minute: int = 60,
) -> Project:
    """A new project, its creator its manager. Rating projects get the humor scale and correction projects
    the RLHF-V hallucination types unless others are given; the kind cannot change later."""
    if kind not in ProjectKind.values:
        raise ApplicationError(f"Unknown project kind {kind!r}; choose one of {', '.join(ProjectKind.values)}.")
    if visibility not in Visibility.values:
        raise ApplicationError(f"Unknown visibility {visibility!r}; choose one of {', '.join(Visibility.values)}.")
    if not 1 <= overlap <= 1000:
        raise ApplicationError("Overlap is 1 to 1000 annotators per task.", {"field": "overlap"})
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"A project with the slug {slug!r} already exists.", {"field": "slug"})
    project = Project(
        slug=slug,
        name=name or slug,
        kind=kind,
        instructions=instructions,
        overlap=overlap,
        visibility=visibility,
        show_ai_suggestions=show_ai_suggestions,
        rating_levels=(
            _scale(rating_levels, default=DEFAULT_RATING_LEVELS, what="rating levels")
            if kind == ProjectKind.RATING
            else []
        ),
        hallucination_types=(
            _scale(hallucination_types, default=DEFAULT_HALLUCINATION_TYPES, what="hallucination types")
            if kind == ProjectKind.CORRECTION
            else []
        ),
        public_quota=public_quota,
        public_rate_per_minute=public_rate_per_minute,
        created_by=created_by,
    )
    project.full_clean(exclude=["created_by"])  # a project made from the command line may have no creator
    project.save()
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Role.MANAGER)
    return project


@transaction.atomic
def project_member_add(*, project: Project, user: AbstractBaseUser, role: str = Role.ANNOTATOR) -> Membership:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    if not user.is_active:
        raise ApplicationError("Inactive accounts (crowd participants, imported annotators) cannot be members.")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def project_overlap_set(*, project: Project, overlap: int) -> Project:
    """Change how many annotators each task needs; tasks that gain free slots go back to the queue (also
    for annotators who passed them while they were full), tasks that lose them leave it."""
    if not 1 <= overlap <= 1000:
        raise ApplicationError("Overlap is 1 to 1000 annotators per task.", {"field": "overlap"})
    project = Project.objects.select_for_update().get(pk=project.pk)
    if overlap == project.overlap:
        return project
    units = unit_model(project).objects.filter(project=project)
    if overlap > project.overlap:
        units.filter(taken_count__lt=overlap, is_open=False).update(is_open=True, reopened=True)
    else:
        units.update(is_open=Case(When(taken_count__lt=overlap, then=Value(True)), default=Value(False)))
    project.overlap = overlap
    project.save(update_fields=["overlap"])
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | None = None,
    instructions: str | None = None,
    overlap: int | None = None,
    visibility: str | None = None,
    show_ai_suggestions: bool | None = None,
    public_quota: int | None = None,
    public_rate_per_minute: int | None = None,
) -> Project:
    """Change the settings given (None leaves one as it is). Kind and scales stay: annotations index them."""
    if overlap is not None:
        project = project_overlap_set(project=project, overlap=overlap)
    if visibility is not None and visibility not in Visibility.values:
        raise ApplicationError(f"Unknown visibility {visibility!r}; choose one of {', '.join(Visibility.values)}.")
    changes = {
        "name": name,
        "instructions": instructions,
        "visibility": visibility,
        "show_ai_suggestions": show_ai_suggestions,
        "public_quota": public_quota,
        "public_rate_per_minute": public_rate_per_minute,
    }
    changed = [field for field, value in changes.items() if value is not None]
    for field in changed:
        setattr(project, field, changes[field])
    if changed:
        project.full_clean()
        project.save(update_fields=changed)
    return project
