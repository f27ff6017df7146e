"""The pairwise page in a real browser: an annotator judges with the keyboard, with strength and reason,
and goes back to change an answer."""

import pytest

from annotation import services
from annotation.models import PairwiseJudgment
from tests.browser.conftest import above_the_fold

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_judges_by_keyboard_and_amends_an_answer(
    page, login, live_server, pairwise_project, shapes_import, annotator, screenshot_dir
):
    """Keys store A / B (clearly) / both bad for the answers as shown, a reason typed after R goes with the
    next choice, and Backspace reopens the last answer, which a new key replaces."""
    services.items_import(project=pairwise_project, path=shapes_import)
    login(page, annotator)
    queue_calls = []  # each answer brings the next task back (`submit/?next=1`): no `next` per answer
    page.on("request", lambda r: "/tasks/" in r.url and queue_calls.append(r.url.split("/tasks/")[1]))
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    page.wait_for_function("() => document.getElementById('item-image').naturalWidth > 0")
    page.screenshot(path=str(screenshot_dir / "pairwise.png"), full_page=True)

    shown = []
    for keys, reason in (("1", ""), ("Shift+2", "B names the right colour"), ("4", "")):
        assignment = page.get_attribute("#task", "data-assignment")
        shown.append((int(assignment), page.inner_text("#answer-a .text"), page.inner_text("#answer-b .text")))
        if reason:
            page.keyboard.press("r")
            page.keyboard.type(reason)
            page.keyboard.press("Escape")
        page.keyboard.press(keys)
        page.wait_for_function(f"() => document.getElementById('task').dataset.assignment !== '{assignment}'")
    assert page.inner_text("#mine") == "3"
    assert [call for call in queue_calls if call.startswith("next/")] == ["next/"]
    assert sum("/submit/?next=1" in call for call in queue_calls) == 3

    expected = [("a", 1, ""), ("b", 2, "B names the right colour"), ("both_bad", 1, "")]
    for (assignment_id, left, right), (choice, strength, reason) in zip(shown, expected, strict=True):
        judgment = PairwiseJudgment.objects.select_related("response_a", "response_b").get(assignment_id=assignment_id)
        assert (judgment.choice, judgment.strength, judgment.reason) == (choice, strength, reason)
        assert (judgment.response_a.text, judgment.response_b.text) == (left, right)

    page.keyboard.press("Backspace")
    page.wait_for_selector("#amend:not([hidden])")
    assert page.get_attribute("#task", "data-assignment") == str(shown[2][0])
    assert page.get_attribute("[data-choice=both_bad]", "class").split().count("chosen") == 1
    page.keyboard.press("3")
    page.wait_for_selector("#amend", state="hidden")
    assert PairwiseJudgment.objects.get(assignment_id=shown[2][0]).choice == "tie"
    assert PairwiseJudgment.objects.count() == 3
    assert page.inner_text("#mine") == "3", "an amended answer is not a new one"


INSTRUCTIONS = (
    "Pick the answer that describes the picture better.\nLook at colours, counts and positions.\n"
    "A tie when both are equally right."
)
LONG = "A red cube sits left of two blue balls on a wooden table; behind them a green cone leans on a yellow cylinder."


def test_at_1366x768_the_choices_show_with_the_instructions_open_and_ctrl_enter_finishes_a_reason(
    laptop_page, login, live_server, project_with, annotator, screenshot_dir
):
    """A first-time annotator (instructions open) sees A/B/tie/both-bad without scrolling; the hints name Esc
    and Ctrl+Enter; Ctrl+Enter in the reason box leaves it and asks for a choice, which stores the reason;
    when changing an earlier answer, Ctrl+Enter in the reason box sends the new reason with that choice."""
    items = [
        {
            "external_id": f"p{n}",
            "prompt": "Describe the scene.",
            "responses": [{"text": LONG}, {"text": f"{LONG} ({n})"}],
        }
        for n in range(2)
    ]
    project = project_with("pairwise", items, instructions=INSTRUCTIONS)
    page = laptop_page
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    assert page.is_visible("#instructions")
    for choice in ("a", "b", "tie", "both_bad"):
        assert above_the_fold(page, f"[data-choice={choice}]"), f"the {choice} button is below the fold"
    assert "Esc" in page.inner_text("#instructions .keys") and "Ctrl+Enter" in page.inner_text("#instructions .keys")
    assert "Esc" in page.inner_text("#reason-keys")
    page.screenshot(path=str(screenshot_dir / "pairwise-1366x768.png"))

    first = int(page.get_attribute("#task", "data-assignment"))
    page.keyboard.press("r")
    page.keyboard.type("B counts the balls right")
    page.keyboard.press("Control+Enter")
    assert page.evaluate("document.activeElement.id") != "reason"
    assert "Now choose" in page.inner_text("#status")
    assert "awaiting" in page.get_attribute("#choices", "class")
    assert PairwiseJudgment.objects.count() == 0
    page.keyboard.press("2")
    page.wait_for_function(f"() => document.getElementById('task').dataset.assignment !== '{first}'")
    judgment = PairwiseJudgment.objects.get(assignment_id=first)
    assert (judgment.choice, judgment.reason) == ("b", "B counts the balls right")
    assert "awaiting" not in page.get_attribute("#choices", "class")

    page.keyboard.press("Backspace")
    page.wait_for_selector("#amend:not([hidden])")
    page.keyboard.press("r")
    page.keyboard.press("Control+a")
    page.keyboard.type("B counts the balls and the cone right")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#amend", state="hidden")
    judgment.refresh_from_db()
    assert (judgment.choice, judgment.reason) == ("b", "B counts the balls and the cone right")


def test_z_zooms_and_the_arrow_keys_move_around_the_image(
    laptop_page, login, live_server, project_with, annotator, screenshot_dir
):
    """Z zooms to the middle with a hint on the image; arrows move the zoomed view; Esc zooms out; no arrow
    or Esc answers the task."""
    project = project_with(
        "pairwise",
        [{"external_id": "z1", "prompt": "Describe the scene.", "responses": [{"text": "One."}, {"text": "Two."}]}],
    )
    page = laptop_page
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    page.wait_for_function("() => document.getElementById('item-image').naturalWidth > 0")
    assert page.is_hidden("#zoom-hint")

    origin = "getComputedStyle(document.getElementById('item-image')).transformOrigin"
    size = page.evaluate("document.getElementById('item-image').clientWidth")
    page.keyboard.press("z")
    assert "zoomed" in page.get_attribute("#zoom", "class")
    assert page.is_visible("#zoom-hint") and "move" in page.inner_text("#zoom-hint")
    assert page.evaluate(origin) == f"{size / 2:g}px {size / 2:g}px"
    for key in (
        "ArrowRight",
        "ArrowRight",
        "ArrowDown",
        "ArrowLeft",
        "ArrowDown",
        "ArrowDown",
        "ArrowDown",
        "ArrowDown",
    ):
        page.keyboard.press(key)
    # right 2, left 1: x at 62.5%; down 5 steps of 12.5% from the middle stops at the bottom edge.
    assert page.evaluate(origin) == f"{size * 0.625:g}px {size:g}px"
    for _ in range(8):
        page.keyboard.press("ArrowUp")
    assert page.evaluate(origin) == f"{size * 0.625:g}px 0px"
    page.screenshot(path=str(screenshot_dir / "pairwise-zoomed-1366x768.png"))  # the top edge: the shapes
    page.keyboard.press("Escape")
    assert "zoomed" not in page.get_attribute("#zoom", "class")
    assert page.is_hidden("#zoom-hint")
    assert PairwiseJudgment.objects.count() == 0
