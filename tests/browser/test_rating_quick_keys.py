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


def open_contest(page, live_server, project_with, *, hold_submits: bool = True) -> "HeldSubmits | None":
    """A public four-caption contest's crowd page, open with its next caption in hand; its submits held at the
    network unless told otherwise (then the caller routes them)."""
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
    held = HeldSubmits(page) if hold_submits else None
    # Keys are pressed once the next caption is in hand: the page asks for it as soon as it shows one, and says
    # when it holds it (its reply read, not only arrived: a key pressed between the two waited for its submit).
    page.goto(f"{live_server.url}/crowd/{project.slug}/")
    page.wait_for_selector("#task:not([hidden])")
    page.wait_for_selector("#annotator[data-prefetched]", state="attached")
    return held


@pytest.fixture
def crowd_page(page, live_server, project_with):
    """The crowd page of a public four-caption contest, its submits held; (page, held submits)."""
    return page, open_contest(page, live_server, project_with)


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


def test_an_answer_is_counted_once_when_a_progress_reply_overtakes_its_own(page, live_server, project_with):
    """The header asks the server for progress after each answer. When that reply was computed after the next
    answer was stored but reaches the page before that answer's own reply, the answer is still counted once
    (the page used to take the server's count, then add the reply's own: 3 answers shown for 2)."""
    progress_held, answers_stored = [], []  # routes held: a progress request; answers the server has stored
    holding = {"progress": False, "answer replies": False}

    def on_progress(route) -> None:
        if holding["progress"]:
            progress_held.append(route)
        else:
            route.continue_()

    def on_submit(route) -> None:
        if holding["answer replies"]:
            answers_stored.append((route, route.fetch()))  # the server stores it; the page waits for the reply
        else:
            route.continue_()

    page.route(re.compile(r"/tasks/progress/$"), on_progress)
    page.route(re.compile(r"/submit/(\?.*)?$"), on_submit)
    open_contest(page, live_server, project_with, hold_submits=False)
    expect(page.locator("#total")).to_have_text("4")  # the first progress reply is in

    def wait_for(items: list) -> None:
        for _ in range(200):
            if items:
                return
            page.wait_for_timeout(25)
        raise AssertionError("the page did not send the request")

    holding["progress"] = True
    page.keyboard.press("3")  # the first answer's reply comes at once; the progress asked after it is held
    expect(page.locator("#mine")).to_have_text("1")
    wait_for(progress_held)
    holding["answer replies"] = True
    page.keyboard.press("1")  # the second answer is stored, its reply held
    wait_for(answers_stored)
    with page.expect_response(lambda r: r.url.endswith("/tasks/progress/")):
        progress_held.pop().continue_()  # computed now: the server counts 2
    expect(page.locator("#done")).to_have_text("2")  # the page has read it
    holding["progress"] = False
    route, response = answers_stored.pop()
    route.fulfill(response=response)
    expect(page.locator("#status")).to_contain_text("Saved")
    page.wait_for_timeout(300)  # any later progress reply has come back
    expect(page.locator("#mine")).to_have_text("2")
    assert Rating.objects.count() == 2
