"""A researcher's pages in a real browser: create a project from the form (with its annotators), import
from the dashboard as a background job whose progress and outcome show in its row, and see the tasks
appear without reloading; manage members."""

import pytest

from annotation.models import Item, Membership, Project
from tests.helpers import write_shapes_import, zip_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_create_a_project_and_import_tasks_from_the_dashboard(
    page, login, live_server, celery_worker_process, admin_user, annotator, tmp_path, screenshot_dir
):
    """The new-project form (naming an annotator) leads to the dashboard; a bad file's job fails saying
    nothing was stored and where; a good one's row shows the file's own name and progress, and the task
    table fills in without a reload."""
    login(page, admin_user)
    page.goto(f"{live_server.url}/projects/new/")
    page.fill("input[name=slug]", "cartoons")
    page.fill("input[name=name]", "Cartoon answers")
    page.select_option("select[name=kind]", "correction")
    page.fill("textarea[name=instructions]", "Mark every wrong word.")
    page.fill("textarea[name=annotators]", annotator.username)
    page.screenshot(path=str(screenshot_dir / "project_new.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/cartoons/dashboard/")
    project = Project.objects.get(slug="cartoons")
    assert project.hallucination_types[0] == "object"
    assert Membership.objects.get(project=project, user=annotator).role == "annotator"
    assert page.locator("#member-list tr[data-username='ann-annotator']").count() == 1

    bad = tmp_path / "my bad file.jsonl"
    bad.write_text('{"external_id": "x"}\n', encoding="utf-8")
    page.set_input_files("#import-form input[name=file]", str(bad))
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-status.error", timeout=60_000)
    status = page.inner_text("#import-status")
    assert "nothing was stored" in status and "line 1" in status, status
    failed_row = page.locator("#import-jobs tr[data-status=failed]")
    assert "my bad file.jsonl" in failed_row.inner_text(), "the user's own file name, not the server's"
    assert "nothing was stored" in failed_row.inner_text()

    jsonl = write_shapes_import(tmp_path / "shapes", n=3, seed=5)
    archive = tmp_path / "images.zip"
    archive.write_bytes(zip_images(jsonl))
    page.set_input_files("#import-form input[name=file]", str(jsonl))
    page.set_input_files("#import-form input[name=images]", str(archive))
    assert page.locator("#tasks tbody tr").count() == 0
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-jobs tr[data-status=succeeded]", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('#tasks tbody tr').length === 6")
    assert Item.objects.filter(project__slug="cartoons").count() == 3
    done_row = page.locator("#import-jobs tr[data-status=succeeded]").inner_text()
    assert "items.jsonl" in done_row and "3 new items" in done_row and "3 / 3" in done_row, done_row
    assert "6" in page.inner_text("#stats"), "the figures were refreshed with the table"
    assert "3 new items" in page.inner_text("#import-status.ok")
    page.screenshot(path=str(screenshot_dir / "dashboard.png"), full_page=True)


def test_a_manager_adds_changes_and_removes_members_on_the_dashboard(
    page, login, live_server, researcher, annotator, make_user, screenshot_dir
):
    """Invite by email as annotator, make them manager with the role menu, remove them after confirming; an
    unknown name is refused in words next to the form."""
    from annotation import services

    services.project_create(slug="team", kind="pairwise", created_by=researcher)
    colleague = make_user("cora-colleague")
    colleague.email = "cora@example.org"
    colleague.save()
    login(page, researcher)
    page.goto(f"{live_server.url}/projects/team/dashboard/")

    page.fill("#member-add [name=username_or_email]", "Cora@Example.org")
    page.click("#member-add button[type=submit]")
    page.wait_for_selector("#member-messages li.ok")
    assert "cora-colleague is now annotator." in page.inner_text("#member-messages")
    row = "#member-list tr[data-username='cora-colleague']"
    assert page.locator(f"{row} select[name=role]").input_value() == "annotator"

    page.select_option(f"{row} select[name=role]", "manager")
    page.wait_for_selector("#member-messages li:has-text('cora-colleague is now manager.')")
    assert Membership.objects.get(project__slug="team", user=colleague).role == "manager"

    page.fill("#member-add [name=username_or_email]", "nobody@example.org")
    page.click("#member-add button[type=submit]")
    page.wait_for_selector("#member-messages li.error")
    assert "No account with the username or email 'nobody@example.org'" in page.inner_text("#member-messages")
    page.locator("#members").screenshot(path=str(screenshot_dir / "dashboard_members.png"))

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(f"{row} button:has-text('Remove')")
    assert Membership.objects.filter(project__slug="team", user=colleague).exists(), "dismissed: nothing removed"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"{row} button:has-text('Remove')")
    page.wait_for_selector("#member-messages li:has-text('cora-colleague was removed from the project.')")
    assert page.locator(row).count() == 0
    assert not Membership.objects.filter(project__slug="team", user=colleague).exists()
