"""The rating page prefetches the next caption while one is shown (issue 15): a key shows the next caption at
once, before the rating's reply comes back, and the rating is stored for the caption that was on screen."""

import pytest
from playwright.sync_api import expect

from annotation.models import Rating

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every submit takes 800 ms to leave: a caption that changes sooner came from the prefetch.
SLOW_SUBMITS = """
const send = window.fetch.bind(window);
window.fetch = (url, options) => String(url).endsWith("/submit/")
  ? new Promise((resolve) => setTimeout(resolve, 800)).then(() => send(url, options))
  : send(url, options);
"""

CAPTIONS = ["I said I wanted a window seat.", "Is this the express?", "We're going to need a bigger desk.", "Fine."]


def test_a_key_shows_the_prefetched_caption_before_the_rating_is_saved(page, live_server, project_with, screenshot_dir):
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
    with page.expect_response(lambda r: "/tasks/next/?after=" in r.url) as prefetched:
        page.goto(f"{live_server.url}/crowd/{project.slug}/")
        page.wait_for_selector("#task:not([hidden])")
    ahead = prefetched.value.json()
    first_caption = page.inner_text("#caption")
    assert ahead["responses"][0]["text"] != first_caption

    page.keyboard.press("2")
    # Well before the 800 ms the rating takes to leave, the prefetched caption is on screen.
    expect(page.locator("#caption")).to_have_text(ahead["responses"][0]["text"], timeout=400)
    expect(page.locator("#task")).to_have_attribute("data-assignment", str(ahead["assignment_id"]), timeout=100)
    expect(page.locator("#status")).to_have_text("Saving… Rated “somewhat funny”.")
    page.screenshot(path=str(screenshot_dir / "rating_prefetch.png"), full_page=True)
    assert Rating.objects.count() == 0  # the rating is still on its way

    expect(page.locator("#mine")).to_have_text("1", timeout=10_000)
    stored = [(r.response.text, r.level) for r in Rating.objects.select_related("response")]
    assert stored == [(first_caption, 1)]
