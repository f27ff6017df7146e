"""Projects and their members, and the settings a researcher may change after creating one."""

from collections.abc import Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, Q, Value, When

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


def _rating_sampling_check(value: str) -> str:
    from annotation.sampling import POLICIES

    if value not in POLICIES:
        raise ApplicationError(
            f"Unknown rating sampling {value!r}; choose one of {', '.join(POLICIES)}.", {"field": "rating_sampling"}
        )
    return value


def _rating_top_k_check(value: int) -> int:
    if not 1 <= value <= 1000:
        raise ApplicationError("Top k is 1 to 1000 captions.", {"field": "rating_top_k"})
    return value


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
    rating_sampling: str = "uniform",
    rating_top_k: int = 10,
    annotators: Sequence[str] = (),
    managers: Sequence[str] = (),
) -> Project:
    """A new project, its creator its manager. Rating projects get the humor scale and correction projects
    the RLHF-V hallucination types unless others are given; the kind cannot change later. `annotators` and
    `managers` (usernames or emails) become members; one that names no account creates no project."""
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
        rating_sampling=_rating_sampling_check(rating_sampling),
        rating_top_k=_rating_top_k_check(rating_top_k),
        created_by=created_by,
    )
    project.full_clean(exclude=["created_by"])  # a project made from the command line may have no creator
    project.save()
    if created_by is not None:
        Membership.objects.create(project=project, user=created_by, role=Role.MANAGER)
    for field, role, names in (("annotators", Role.ANNOTATOR, annotators), ("managers", Role.MANAGER, managers)):
        for name in names:
            project_member_invite(project=project, username_or_email=name, role=role, field=field)
    return project


LAST_MANAGER = "A project keeps at least one manager; make someone else manager first."


def _is_last_manager(membership: Membership) -> bool:
    others = Membership.objects.filter(project_id=membership.project_id, role=Role.MANAGER).exclude(pk=membership.pk)
    return membership.role == Role.MANAGER and not others.exists()


@transaction.atomic
def project_member_add(*, project: Project, user: AbstractBaseUser, role: str = Role.ANNOTATOR) -> Membership:
    """Make `user` a member with `role`, or change the role of a member (the last manager stays one)."""
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    if not user.is_active:
        raise ApplicationError("Inactive accounts (crowd participants, imported annotators) cannot be members.")
    current = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if current is not None and role != Role.MANAGER and _is_last_manager(current):
        raise ApplicationError(LAST_MANAGER, {"field": "role"})
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def user_find(*, username_or_email: str, field: str = "username_or_email") -> AbstractBaseUser:
    """The active account with this username, else the one with this email (case-insensitive)."""
    wanted = username_or_email.strip()
    if not wanted:
        raise ApplicationError("Give a username or an email.", {"field": field})
    users = get_user_model().objects.filter(is_active=True)
    user = users.filter(username=wanted).first()
    if user is None and "@" in wanted:
        matches = list(users.filter(Q(email__iexact=wanted))[:2])
        if len(matches) > 1:
            raise ApplicationError(
                f"More than one account has the email {wanted}; give the username.",
                {"field": field},
            )
        user = matches[0] if matches else None
    if user is None:
        raise ApplicationError(
            f"No account with the username or email {wanted!r}; an admin creates accounts in the admin "
            "(Users → Add) first.",
            {"field": field},
        )
    return user


@transaction.atomic
def project_member_invite(
    *, project: Project, username_or_email: str, role: str = Role.ANNOTATOR, field: str = "username_or_email"
) -> Membership:
    """Add the account named by username or email to the project with `role` (or change its role)."""
    user = user_find(username_or_email=username_or_email, field=field)
    return project_member_add(project=project, user=user, role=role)


@transaction.atomic
def project_member_remove(*, project: Project, user: AbstractBaseUser) -> None:
    """Take `user` out of the project. Their answers stay; a project keeps at least one manager. Tasks they
    hold come back to the queue when their leases expire."""
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        raise ApplicationError(f"{user.get_username()} is not a member of {project.name}.", {"field": "user"})
    if _is_last_manager(membership):
        raise ApplicationError(LAST_MANAGER, {"field": "user"})
    membership.delete()


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
    rating_sampling: str | None = None,
    rating_top_k: int | None = None,
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
        "rating_sampling": None if rating_sampling is None else _rating_sampling_check(rating_sampling),
        "rating_top_k": None if rating_top_k is None else _rating_top_k_check(rating_top_k),
    }
    changed = [field for field, value in changes.items() if value is not None]
    for field in changed:
        setattr(project, field, changes[field])
    if changed:
        project.full_clean()
        project.save(update_fields=changed)
    return project
