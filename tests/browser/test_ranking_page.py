"""Ranking in a real browser: answers ordered by mouse drag and by keys, stored as a full order; going
back to the answer amends it."""

import pytest

from annotation.models import Ranking, Response
from tests.browser.conftest import above_the_fold

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXTS = ["One red cube.", "Two red cubes and a ball.", "A cube, maybe red, maybe a ball."]


def shown_texts(page) -> list[str]:
    return page.eval_on_selector_all("#ranking .rank-card .text", "nodes => nodes.map(n => n.textContent)")


def test_an_annotator_orders_answers_by_drag_and_keys_and_amends_it(
    page, login, live_server, project_with, annotator, screenshot_dir
):
    """Dragging the last answer to the top and moving one down with Shift+↓ store that order, best first;
    Backspace brings the ranking back and a changed order replaces it."""
    project = project_with(
        "ranking",
        [{"external_id": "r1", "prompt": "Rank the descriptions.", "responses": [{"text": t} for t in TEXTS]}],
    )
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#ranking .rank-card")
    start = shown_texts(page)
    assert sorted(start) == sorted(TEXTS)

    # Mouse: drag the bottom card above the top one.
    bottom = page.locator("#ranking .rank-card").nth(2).bounding_box()
    top = page.locator("#ranking .rank-card").nth(0).bounding_box()
    page.mouse.move(bottom["x"] + 20, bottom["y"] + bottom["height"] / 2)
    page.mouse.down()
    page.mouse.move(top["x"] + 20, top["y"] + 5, steps=8)
    page.mouse.up()
    after_drag = [start[2], start[0], start[1]]
    assert shown_texts(page) == after_drag

    # Keys: the dragged card has focus; ↓ picks the second, Shift+↓ moves it to the bottom.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Shift+ArrowDown")
    expected = [after_drag[0], after_drag[2], after_drag[1]]
    assert shown_texts(page) == expected
    page.screenshot(path=str(screenshot_dir / "ranking.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("#empty:not([hidden])")

    ids = {r.text: r.pk for r in Response.objects.filter(item__project=project)}
    assert Ranking.objects.get().order == [ids[t] for t in expected]

    page.keyboard.press("Backspace")
    page.wait_for_selector("#amend:not([hidden])")
    assert shown_texts(page) == expected
    page.locator("#ranking .rank-card").nth(0).focus()
    page.keyboard.press("Shift+End")
    page.keyboard.press("Enter")
    page.wait_for_selector("#empty:not([hidden])")
    amended = [expected[1], expected[2], expected[0]]
    assert Ranking.objects.count() == 1
    assert Ranking.objects.get().order == [ids[t] for t in amended]


def test_at_1366x768_submit_shows_with_the_instructions_open(
    laptop_page, login, live_server, project_with, annotator, screenshot_dir
):
    """Four two-line answers beside the image, the instructions open: Submit is on screen without scrolling,
    and clicking it stores the order shown."""
    long = (
        "A red cube sits left of two blue balls on a wooden table; behind them a green cone leans on a yellow cylinder"
    )
    texts = [f"{long}, seen from answer {n}." for n in range(4)]
    project = project_with(
        "ranking",
        [{"external_id": "r4", "prompt": "Rank the descriptions.", "responses": [{"text": t} for t in texts]}],
        instructions="Best description on top.\nCount the shapes; check colours and positions.\nDrag or use the keys.",
    )
    page = laptop_page
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#ranking .rank-card")
    assert page.is_visible("#instructions")
    assert above_the_fold(page, "#btn-submit"), "Submit ranking is below the fold"
    page.screenshot(path=str(screenshot_dir / "ranking-1366x768.png"))
    shown = shown_texts(page)
    page.click("#btn-submit")
    page.wait_for_selector("#empty:not([hidden])")
    ids = {r.text: r.pk for r in Response.objects.filter(item__project=project)}
    assert Ranking.objects.get().order == [ids[t] for t in shown]
