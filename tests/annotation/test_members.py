"""Members from Loupe's own pages and the CLI: invite by username or email with a role, change the role,
remove; who may do it; `create_project --visibility/--annotator/--manager`."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotation import services
from annotation.models import Membership, Project, Role
from loupe.errors import ApplicationError

pytestmark = [pytest.mark.django_db]


def roles(project: Project) -> dict[str, str]:
    return {m.user.username: m.role for m in Membership.objects.filter(project=project).select_related("user")}


@pytest.fixture
def project(researcher):
    return services.project_create(slug="members", kind="pairwise", created_by=researcher)


def test_invite_by_username_or_email_change_role_and_remove(project, researcher, annotator, make_user):
    annotator.email = "Ann@Example.org"
    annotator.save()
    services.project_member_invite(project=project, username_or_email="ann@example.org")
    assert roles(project) == {"rhea-researcher": "manager", "ann-annotator": "annotator"}
    services.project_member_invite(project=project, username_or_email="ann-annotator", role=Role.MANAGER)
    assert roles(project)["ann-annotator"] == "manager"
    services.project_member_remove(project=project, user=annotator)
    assert roles(project) == {"rhea-researcher": "manager"}

    with pytest.raises(ApplicationError, match="No account with the username or email 'nobody@example.org'"):
        services.project_member_invite(project=project, username_or_email="nobody@example.org")
    twin_a, twin_b = make_user("twin-a"), make_user("twin-b")
    for twin in (twin_a, twin_b):
        twin.email = "twins@example.org"
        twin.save()
    with pytest.raises(ApplicationError, match="More than one account"):
        services.project_member_invite(project=project, username_or_email="twins@example.org")


def test_a_project_keeps_its_last_manager(project, researcher, annotator):
    with pytest.raises(ApplicationError, match="at least one manager"):
        services.project_member_remove(project=project, user=researcher)
    with pytest.raises(ApplicationError, match="at least one manager"):
        services.project_member_add(project=project, user=researcher, role=Role.ANNOTATOR)
    services.project_member_add(project=project, user=annotator, role=Role.MANAGER)
    services.project_member_remove(project=project, user=researcher)
    assert roles(project) == {"ann-annotator": "manager"}


def test_managers_add_and_remove_members_from_the_dashboard(project, researcher, annotator, outsider):
    client = Client()
    client.force_login(researcher)
    added = client.post(
        "/projects/members/members/", {"username_or_email": "ann-annotator", "role": "annotator"}, follow=True
    )
    assert added.status_code == 200 and roles(project)["ann-annotator"] == "annotator"
    assert b"ann-annotator is now annotator." in added.content
    assert b'id="member-list"' in added.content

    refused = client.post(
        "/projects/members/members/", {"username_or_email": "nobody", "role": "annotator"}, follow=True
    )
    assert refused.status_code == 200 and b"No account with the username or email" in refused.content
    bad_role = client.post(
        "/projects/members/members/", {"username_or_email": "ann-annotator", "role": "boss"}, follow=True
    )
    assert bad_role.status_code == 200 and b"role: Select a valid choice" in bad_role.content
    last = client.post(f"/projects/members/members/{researcher.pk}/remove/", follow=True)
    assert b"A project keeps at least one manager" in last.content and roles(project)["rhea-researcher"] == "manager"

    # An annotator of the project is told it takes the manager role; an outsider learns nothing.
    as_annotator = Client()
    as_annotator.force_login(annotator)
    assert as_annotator.post(f"/projects/members/members/{annotator.pk}/remove/").status_code == 403
    as_outsider = Client()
    as_outsider.force_login(outsider)
    assert as_outsider.post("/projects/members/members/", {"username_or_email": "otto-outsider"}).status_code == 404
    assert "otto-outsider" not in roles(project)

    removed = client.post(f"/projects/members/members/{annotator.pk}/remove/", follow=True)
    assert b"ann-annotator was removed from the project." in removed.content
    assert "ann-annotator" not in roles(project)
    assert client.post(f"/projects/members/members/{annotator.pk}/remove/").status_code == 404
    assert client.get("/projects/members/members/").status_code == 405


def test_the_new_project_form_adds_members(admin_user, annotator, researcher):
    client = Client()
    client.force_login(admin_user)
    form = {"slug": "with-members", "kind": "rating", "overlap": 1, "visibility": "members", "public_quota": 200}
    form["public_rate_per_minute"] = 60
    refused = client.post("/projects/new/", {**form, "annotators": "ann-annotator, ghost"})
    assert refused.status_code == 200 and b"No account with the username or email &#x27;ghost&#x27;" in refused.content
    assert not Project.objects.filter(slug="with-members").exists(), "a bad member creates no project"

    created = client.post("/projects/new/", {**form, "annotators": "ann-annotator", "managers": "rhea-researcher"})
    assert created.status_code == 302
    assert roles(Project.objects.get(slug="with-members")) == {
        "ada-admin": "manager",
        "ann-annotator": "annotator",
        "rhea-researcher": "manager",
    }


def test_create_project_takes_visibility_and_members_by_email(researcher, annotator):
    annotator.email = "ann@example.org"
    annotator.save()
    out = StringIO()
    call_command(
        "create_project", "crowd-cli", "--kind", "rating", "--owner", researcher.username,
        "--visibility", "public", "--annotator", "ann@example.org", stdout=out,
    )  # fmt: skip
    project = Project.objects.get(slug="crowd-cli")
    assert project.visibility == "public"
    assert roles(project) == {"rhea-researcher": "manager", "ann-annotator": "annotator"}
    assert "crowd page /crowd/crowd-cli/" in out.getvalue()
    with pytest.raises(CommandError, match="--annotator: No account with the username or email 'ghost'"):
        call_command("create_project", "ghostly", "--kind", "pairwise", "--annotator", "ghost")
    assert not Project.objects.filter(slug="ghostly").exists()
    with pytest.raises(CommandError, match="invalid choice: 'secret'"):
        call_command("create_project", "x", "--kind", "pairwise", "--visibility", "secret")


def test_the_members_api_lists_adds_by_username_or_email_and_removes(
    project, researcher, annotator, outsider, api_client_for
):
    """The API does what the dashboard does: list, add by username or email (again: change the role), remove;
    the last manager stays; an outsider sees no such project."""
    annotator.email = "ann@example.org"
    annotator.save()
    api = api_client_for(researcher)
    url = f"/api/v1/projects/{project.slug}/members/"
    added = api.post(url, {"username": "ANN@example.org", "role": "annotator"}, format="json")
    assert added.status_code == 201, added.content
    assert added.json() == {"username": "ann-annotator", "email": "ann@example.org", "role": "annotator"}
    assert api.post(url, {"username": "ann-annotator", "role": "manager"}, format="json").status_code == 201
    assert [(m["username"], m["role"]) for m in api.get(url).json()] == [
        ("ann-annotator", "manager"),
        ("rhea-researcher", "manager"),
    ]
    missing = api.post(url, {"username": "nobody@example.org"}, format="json")
    assert missing.status_code == 400 and "nobody@example.org" in missing.content.decode()
    assert api.delete(f"{url}ann-annotator/").status_code == 204
    assert roles(project) == {"rhea-researcher": "manager"}
    last = api.delete(f"{url}rhea-researcher/")
    assert last.status_code == 400 and roles(project) == {"rhea-researcher": "manager"}
    assert api_client_for(outsider).get(url).status_code == 404
