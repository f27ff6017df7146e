"""What a newcomer meets first, in a real browser (issue 18): styled 403 and 404 pages with the top bar and
a way back, the login form keeping the username, no favicon 404, progress on the project list, and the
crowd page's welcome reached through the dashboard's crowd link."""

import pytest

from annotation import services
from tests.annotation.test_queue import make_project, next_task, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_meets_styled_403_and_404_pages_with_a_way_back(
    page, login, live_server, researcher, annotator, outsider, screenshot_dir
):
    project = make_project(researcher, [annotator], items=2)
    services.project_create(slug="secret-project", kind="pairwise", created_by=outsider)
    login(page, annotator)

    answer = page.goto(f"{live_server.url}/projects/{project.slug}/dashboard/")
    assert answer.status == 403
    assert page.inner_text("#error-page h1") == "Not allowed"
    assert "takes the project's manager role" in page.inner_text("#error-page")
    assert page.locator("header.topbar").is_visible() and "Log out ann-annotator" in page.inner_text("header")
    page.screenshot(path=str(screenshot_dir / "error_403.png"), full_page=True)
    page.click("#error-page a:has-text('Back to your projects')")
    page.wait_for_url(f"{live_server.url}/")

    # Another team's project: the same page as a project that does not exist.
    for slug in ("secret-project", "no-such-project"):
        answer = page.goto(f"{live_server.url}/projects/{slug}/dashboard/")
        assert answer.status == 404
        assert page.inner_text("#error-page h1") == "Page not found"
        assert "not allowed" not in page.inner_text("main").lower()
    page.screenshot(path=str(screenshot_dir / "error_404.png"), full_page=True)
    page.click("#error-page a:has-text('Back to your projects')")
    page.wait_for_url(f"{live_server.url}/")


def test_login_keeps_the_username_and_no_page_asks_for_a_missing_favicon(page, live_server, annotator, screenshot_dir):
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "ann-annotator")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    page.wait_for_selector("p.error")
    assert page.input_value("input[name=username]") == "ann-annotator"
    assert page.evaluate("document.activeElement.name") == "password", "the cursor waits in the password field"
    page.screenshot(path=str(screenshot_dir / "login_failed.png"))
    page.fill("input[name=password]", "ann-annotator-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    icon = page.evaluate(
        "fetch(document.querySelector('link[rel=icon]').href).then(r => [r.status, r.headers.get('content-type')])"
    )
    assert icon[0] == 200 and icon[1].startswith("image/svg")
    ico = page.request.get(f"{live_server.url}/favicon.ico")
    assert ico.ok and ico.headers["content-type"].startswith("image/svg")
    assert not [url for url in missing if "favicon" in url], missing


def test_the_project_list_shows_progress_and_the_crowd_link_leads_to_a_welcome(
    page, browser, login, live_server, researcher, annotator, api_client_for, screenshot_dir
):
    project = make_project(researcher, [annotator], items=4)
    client = api_client_for(annotator)
    assert submit(client, project.slug, next_task(client, project.slug), choice="a").status_code == 201
    crowd = services.project_create(
        slug="caption-crowd", kind="rating", name="Caption crowd", created_by=researcher, visibility="public"
    )
    services.project_member_add(project=crowd, user=annotator)

    login(page, researcher)
    row = page.locator(f"#project-list tr[data-project='{project.slug}']")
    assert "1 / 4 tasks finished" in row.inner_text() and "just now" in row.inner_text()
    assert "none yet" in page.locator("#project-list tr[data-project='caption-crowd']").inner_text()
    page.screenshot(path=str(screenshot_dir / "project_list.png"), full_page=True)

    page.goto(f"{live_server.url}/projects/caption-crowd/dashboard/")
    link = page.locator("a#crowd-url")
    assert link.get_attribute("href") == f"{live_server.url}/crowd/caption-crowd/"

    # Someone without an account follows the link.
    stranger = browser.new_context(viewport={"width": 1366, "height": 768})
    crowd_page = stranger.new_page()
    crowd_page.goto(link.get_attribute("href"))
    welcome = crowd_page.locator("#crowd-welcome")
    assert welcome.is_visible() and "No account is needed" in welcome.inner_text()
    assert "up to 200 answers" in welcome.inner_text()
    crowd_page.screenshot(path=str(screenshot_dir / "crowd_welcome.png"))
    stranger.close()


def test_a_run_page_shows_its_config_as_json_and_wraps_long_log_lines(
    page, login, live_server, admin_user, tmp_path, screenshot_dir
):
    from tests.training.conftest import build_pairs_snapshot
    from training.models import JobStatus, TrainingRun

    snapshot = build_pairs_snapshot(slug="json-config", image_dir=tmp_path / "images")
    long_line = "FileNotFoundError: /models/" + "very-long-folder-name-" * 20 + "config.json"
    run = TrainingRun.objects.create(
        method="dpo", base_model="/models/tiny", snapshot=snapshot, status=JobStatus.FAILED,
        config={"use_lora": True, "reward_model": None, "beta": 0.1}, log=f"step 1/20\n{long_line}\n",
    )  # fmt: skip
    login(page, admin_user)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    config = page.inner_text("details pre")
    assert '"use_lora": true' in config and '"reward_model": null' in config, config
    assert "True" not in config and "None" not in config
    widths = page.evaluate(
        "(() => { const log = document.getElementById('run-log'); return [log.scrollWidth, log.clientWidth]; })()"
    )
    assert widths[0] <= widths[1] + 1, f"the log scrolls sideways: {widths}"
    assert "config.json" in page.inner_text("#run-log")
    page.screenshot(path=str(screenshot_dir / "run_config_json.png"), full_page=True)
