"""A researcher's pages in a real browser: create a project from the form, upload an import from the
dashboard, and see the tasks and figures."""

import pytest

from annotation.models import Item, Project
from tests.helpers import write_shapes_import, zip_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_create_a_project_and_import_tasks_from_the_dashboard(
    page, login, live_server, admin_user, tmp_path, screenshot_dir
):
    """The new-project form leads to the dashboard; a JSONL file and its images uploaded there become
    tasks listed on the page; a bad file is refused with its line."""
    login(page, admin_user)
    page.goto(f"{live_server.url}/projects/new/")
    page.fill("input[name=slug]", "cartoons")
    page.fill("input[name=name]", "Cartoon answers")
    page.select_option("select[name=kind]", "correction")
    page.fill("textarea[name=instructions]", "Mark every wrong word.")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/cartoons/dashboard/")
    assert Project.objects.get(slug="cartoons").hallucination_types[0] == "object"

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"external_id": "x"}\n', encoding="utf-8")
    page.set_input_files("#import-form input[name=file]", str(bad))
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-status.error")
    assert "line 1" in page.inner_text("#import-status")

    jsonl = write_shapes_import(tmp_path / "shapes", n=3, seed=5)
    archive = tmp_path / "images.zip"
    archive.write_bytes(zip_images(jsonl))
    page.set_input_files("#import-form input[name=file]", str(jsonl))
    page.set_input_files("#import-form input[name=images]", str(archive))
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-status.ok")
    assert Item.objects.filter(project__slug="cartoons").count() == 3
    page.reload()
    assert page.locator("#tasks tbody tr").count() == 6, "one task per answer in a correction project"
    page.screenshot(path=str(screenshot_dir / "dashboard.png"), full_page=True)
