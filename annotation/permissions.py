"""Object-level access checks. Every view and API fetches protected objects through these functions.

A user who may not see a project gets the same 404 as for a project that does not exist, so project slugs
do not leak. A public crowd project may be annotated by anyone signed in, anonymous crowd participants
included (`annotation.services.crowd`); managing it still takes a manager.

Someone who may see a project but not manage it gets `ManagerRequired`, a 404 to the API (whose answers
stay as they were) that pages turn into a 403 naming the missing role (`loupe.urls.page_not_found`): the
project's existence is no secret to its own members or to anyone for a public project.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.http import Http404

from annotation.models import DatasetSnapshot, LabelerJob, Membership, Project, Role, Visibility
from loupe import rows

MANAGE_ROLES = (Role.MANAGER,)


class ManagerRequired(Http404):
    """The user may see the project but managing it takes the manager role (or staff)."""


def _membership(*, user: AbstractBaseUser | AnonymousUser, project: Project) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(project=project, user=user).first()


def access_project(*, user: AbstractBaseUser | AnonymousUser, project_slug: str) -> Project:
    """The project, if `user` may annotate or read it (member, staff, or anyone for a public project).

    One raw query, the membership test riding along with the project: this runs on every task request,
    where the ORM's query compiler would cost more than the query itself."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    projects, members = (connection.ops.quote_name(m._meta.db_table) for m in (Project, Membership))
    project = rows.instance(
        Project,
        f"SELECT p.*, EXISTS (SELECT 1 FROM {members} m WHERE m.project_id = p.id AND m.user_id = %s) "  # noqa: S608
        f"AS user_is_member FROM {projects} p WHERE p.slug = %s",
        [user.pk, project_slug],
    )
    if project is None:
        raise Http404("No such project.")
    if user.is_staff or project.visibility == Visibility.PUBLIC or project.user_is_member:
        return project
    raise Http404("No such project.")


def access_project_for_management(*, user: AbstractBaseUser | AnonymousUser, project_slug: str) -> Project:
    """The project, if `user` may import into it, snapshot it and export it (manager, or staff)."""
    project = access_project(user=user, project_slug=project_slug)
    if not is_manager(user=user, project=project):
        raise ManagerRequired(f"Managing {project.name} takes the project's manager role.")
    return project


def _holds_role(*, user: AbstractBaseUser | AnonymousUser, project: Project, roles: tuple[str, ...]) -> bool:
    """Whether `user` is active and staff, or a member of `project` with one of `roles`."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    membership = _membership(user=user, project=project)
    return membership is not None and membership.role in roles


def is_manager(*, user: AbstractBaseUser | AnonymousUser, project: Project) -> bool:
    """Whether `user` may see the project's dashboard, import into it and change its settings."""
    return _holds_role(user=user, project=project, roles=MANAGE_ROLES)


def access_snapshot(*, user: AbstractBaseUser | AnonymousUser, snapshot_id: int) -> DatasetSnapshot:
    """The snapshot, if `user` manages its project."""
    snapshot = DatasetSnapshot.objects.select_related("project").filter(pk=snapshot_id).first()
    if snapshot is None:
        raise Http404("No such snapshot.")
    access_project_for_management(user=user, project_slug=snapshot.project.slug)
    return snapshot


def access_labeler_job(*, user: AbstractBaseUser | AnonymousUser, job_id: int) -> LabelerJob:
    """The AI labeler job, if `user` manages its project (the same 404 otherwise)."""
    job = LabelerJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        raise Http404("No such labeler job.")
    access_project_for_management(user=user, project_slug=job.project.slug)
    return job


class ReviewerRequired(ManagerRequired):
    """The user may see the project but reviewing its annotations takes the reviewer or manager role."""


REVIEW_ROLES = (Role.REVIEWER, Role.MANAGER)


def may_review(*, user: AbstractBaseUser | AnonymousUser, project: Project) -> bool:
    """Whether `user` may review the project's annotations: a reviewer or manager of it, or staff."""
    return _holds_role(user=user, project=project, roles=REVIEW_ROLES)


def access_project_for_review(*, user: AbstractBaseUser | AnonymousUser, project_slug: str) -> Project:
    """The project, if `user` may review its annotations (reviewer or manager, or staff); annotators get
    the API's 404 and the pages' 403 (`ManagerRequired`), outsiders the 404 of a project that does not exist."""
    project = access_project(user=user, project_slug=project_slug)
    if not may_review(user=user, project=project):
        raise ReviewerRequired(f"Reviewing {project.name} takes the project's reviewer or manager role.")
    return project
