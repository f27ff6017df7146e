"""Crowd rating at the speed of a keyboard (issue 15): a second key pressed while the first rating is still
being saved is queued for the next caption, never dropped, and the header counts every answer at once."""

import pytest
from playwright.sync_api import expect

from annotation.models import Rating

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A slow network: every submit takes 300 ms to leave, so the second key surely comes while the first is out.
SLOW_SUBMITS = """
const send = window.fetch.bind(window);
window.fetch = (url, options) => String(url).endsWith("/submit/")
  ? new Promise((resolve) => setTimeout(resolve, 300)).then(() => send(url, options))
  : send(url, options);
"""

CAPTIONS = ["I said I wanted a window seat.", "Is this the express?", "We're going to need a bigger desk.", "Fine."]


def test_two_quick_keys_store_two_ratings_of_two_different_captions(page, live_server, project_with, screenshot_dir):
    project = project_with(
        "rating",
        [
            {
                "external_id": "cartoon-1",
                "prompt": "Which caption is funny?",
                "responses": [{"text": t} for t in CAPTIONS],
            }
        ],
        visibility="public",
    )
    page.add_init_script(SLOW_SUBMITS)
    page.goto(f"{live_server.url}/crowd/{project.slug}/")
    page.wait_for_selector("#task:not([hidden])")
    first_caption = page.inner_text("#caption")
    # Both keys go out before the first rating's reply can come back.
    page.keyboard.press("3")
    page.keyboard.press("1")
    assert "will rate the next caption" in page.inner_text("#status")
    # Checked with locators, not page functions: the pages' CSP forbids evaluating strings.
    expect(page.locator("#mine")).to_have_text("2", timeout=10_000)
    expect(page.locator("#done")).to_have_text("2", timeout=10_000)
    page.screenshot(path=str(screenshot_dir / "rating_quick_keys.png"), full_page=True)

    stored = [(r.response.text, r.level) for r in Rating.objects.select_related("response").order_by("id")]
    assert len(stored) == 2
    assert stored[0] == (first_caption, 2)
    assert stored[1][1] == 0 and stored[1][0] != first_caption
    # The page has moved on to a third caption, with no choice shown on it yet.
    for text, _level in stored:
        expect(page.locator("#caption")).not_to_have_text(text)
    assert page.locator("[data-level].chosen").count() == 0


def test_a_third_key_while_one_waits_is_refused_visibly(page, live_server, project_with):
    project = project_with(
        "rating",
        [
            {
                "external_id": "cartoon-1",
                "prompt": "Which caption is funny?",
                "responses": [{"text": t} for t in CAPTIONS],
            }
        ],
        visibility="public",
    )
    page.add_init_script(SLOW_SUBMITS)
    page.goto(f"{live_server.url}/crowd/{project.slug}/")
    page.wait_for_selector("#task:not([hidden])")
    page.keyboard.press("2")
    page.keyboard.press("3")
    page.keyboard.press("1")
    assert "Not taken" in page.inner_text("#status")
    expect(page.locator("#mine")).to_have_text("2", timeout=10_000)
    assert sorted(r.level for r in Rating.objects.all()) == [1, 2]
