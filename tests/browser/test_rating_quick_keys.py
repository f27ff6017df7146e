"""Crowd rating at the speed of a keyboard (issue 15). The page prefetches the next caption, so a key shows it at
once, before the rating is saved; a second key pressed while the first rating is out is queued for the next
caption, never dropped; a third is refused visibly; the header counts every answer.

Submits are held at the network (Playwright routes) until the test lets them go, so "while the first rating is
still being saved" is a state the test makes, not a race it hopes to win."""

import re

import pytest
from playwright.sync_api import expect

from annotation.models import Rating

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CAPTIONS = ["I said I wanted a window seat.", "Is this the express?", "We're going to need a bigger desk.", "Fine."]


class HeldSubmits:
    """Holds every submit request at the network until `release` lets them all go (and the later ones through)."""

    def __init__(self, page) -> None:
        self.held = []
        self.holding = True
        self.traffic = []  # the page's task requests and replies, in order, for a failure's message
        page.route(re.compile(r"/submit/(\?.*)?$"), self._hold)  # the page asks `submit/?next=1&after=…`
        page.on("request", lambda r: self._note("→", r.method, r.url, r.post_data))
        page.on("response", lambda r: self._note("←", r.status, r.url, None))

    def _note(self, direction, what, url, body) -> None:
        if "/tasks/" in url:
            self.traffic.append(f"{direction} {what} {url.split('/tasks/')[-1]} {body or ''}".rstrip())

    def _hold(self, route) -> None:
        if self.holding:
            self.held.append(route)
        else:
            route.continue_()

    def release(self) -> None:
        self.holding = False
        for route in self.held:
            route.continue_()
        self.held.clear()


@pytest.fixture
def crowd_page(page, live_server, project_with):
    """The crowd page of a public four-caption contest, its submits held; (page, held submits)."""
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
    held = HeldSubmits(page)
    # Keys are pressed once the next caption is in hand: the page asks for it as soon as it shows one.
    with page.expect_response(lambda r: "/tasks/next/?after=" in r.url):
        page.goto(f"{live_server.url}/crowd/{project.slug}/")
        page.wait_for_selector("#task:not([hidden])")
    return page, held


def expect_mine(page, held: HeldSubmits, count: int) -> None:
    """The header's own count reaches `count`; if not, the failure says what the page sent and what was stored."""
    try:
        expect(page.locator("#mine")).to_have_text(str(count), timeout=10_000)
    except AssertionError as error:
        stored = [(r.assignment_id, r.response.text, r.level) for r in Rating.objects.select_related("response")]
        raise AssertionError(
            f"{error}\nstatus: {page.inner_text('#status')}\nstored: {stored}\ntraffic:\n" + "\n".join(held.traffic)
        ) from None


def test_a_key_shows_the_prefetched_caption_before_the_rating_is_saved(crowd_page, screenshot_dir):
    page, held = crowd_page
    first_caption = page.inner_text("#caption")
    page.keyboard.press("2")
    # The rating is held at the network, yet another caption is on screen: it came from the prefetch.
    expect(page.locator("#caption")).not_to_have_text(first_caption)
    expect(page.locator("#status")).to_have_text("Saving… Rated “somewhat funny”.")
    assert page.locator("[data-level].chosen").count() == 0
    page.screenshot(path=str(screenshot_dir / "rating_prefetch.png"), full_page=True)
    assert Rating.objects.count() == 0

    held.release()
    expect_mine(page, held, 1)
    stored = [(r.response.text, r.level) for r in Rating.objects.select_related("response")]
    assert stored == [(first_caption, 1)]


def test_two_quick_keys_store_two_ratings_of_two_different_captions(crowd_page, screenshot_dir):
    page, held = crowd_page
    first_caption = page.inner_text("#caption")
    # The second key comes while the first rating is still out.
    page.keyboard.press("3")
    page.keyboard.press("1")
    expect(page.locator("#status")).to_contain_text("will rate the next caption")
    held.release()
    # Checked with locators, not page functions: the pages' CSP forbids evaluating strings.
    expect_mine(page, held, 2)
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


def test_a_third_key_while_one_waits_is_refused_visibly(crowd_page):
    page, held = crowd_page
    page.keyboard.press("2")
    page.keyboard.press("3")
    page.keyboard.press("1")
    expect(page.locator("#status")).to_contain_text("Not taken")
    held.release()
    expect_mine(page, held, 2)
    assert sorted(r.level for r in Rating.objects.all()) == [1, 2]
