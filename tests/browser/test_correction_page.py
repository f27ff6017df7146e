"""The correction page (RLHF-V) in a real browser: spans selected with the mouse and with the keyboard,
typed, replaced, refused when they overlap; the server stores the offsets and the corrected text."""

import pytest

from annotation.models import Correction
from tests.browser.conftest import mouse_select

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANSWER = "A red cube sits left of two blue balls on a wooden table."
CLEAN = "A green cone stands alone."


def test_an_annotator_marks_segments_by_mouse_and_keyboard_and_the_server_stores_them(
    page, login, live_server, project_with, annotator, screenshot_dir
):
    """A mouse-selected and a keyboard-selected span become typed segments; an overlapping selection is
    refused; the preview and the stored correction agree; N stores a correct answer as it is."""
    project = project_with(
        "correction",
        [
            {"external_id": "c1", "prompt": "Describe the scene.", "responses": [{"text": ANSWER}]},
            {"external_id": "c2", "prompt": "Describe it.", "responses": [{"text": CLEAN}]},
        ],
    )
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    assert page.inner_text("#answer-text") == ANSWER

    # Mouse: drag over "red", key 2 (attribute), type the replacement.
    mouse_select(page, "#answer-text", "red")
    page.keyboard.press("2")
    page.wait_for_selector("#editor:not([hidden])")
    assert page.input_value("#editor-type") == "attribute"
    page.keyboard.type("green")
    page.keyboard.press("Enter")
    page.wait_for_selector("mark.seg")

    # Keyboard: caret to the start, arrows to "two", Shift+arrows over it, key 3 (count).
    page.focus("#answer-text")
    page.keyboard.press("Control+Home")
    for _ in range(ANSWER.index("two")):
        page.keyboard.press("ArrowRight")
    for _ in range(3):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("3")
    page.keyboard.type("three")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('mark.seg').length === 2")

    # An overlapping span is refused with a message, and nothing changes.
    mouse_select(page, "#answer-text", "red cube")
    page.keyboard.press("1")
    assert "overlaps" in page.inner_text("#status")
    assert page.locator("#editor").is_hidden()
    assert page.locator("mark.seg").count() == 2

    # A segment can be removed (from its list entry) and marked again.
    page.click("#segment-list li:first-child button.danger")
    assert page.locator("mark.seg").count() == 1
    mouse_select(page, "#answer-text", "red")
    page.click("[data-type-index='1']")
    page.fill("#editor-replacement", "green")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('mark.seg').length === 2")

    corrected = "A green cube sits left of three blue balls on a wooden table."
    assert page.inner_text("#preview") == corrected
    page.screenshot(path=str(screenshot_dir / "correction.png"), full_page=True)

    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"() => document.getElementById('answer-text').textContent === {CLEAN!r}")
    page.keyboard.press("n")
    page.wait_for_selector("#empty:not([hidden])")

    stored = Correction.objects.select_related("response").get(response__text=ANSWER)
    assert stored.corrected_text == corrected
    assert [(s["start"], s["end"], s["type"], s["replacement"]) for s in stored.segments] == [
        (ANSWER.index("red"), ANSWER.index("red") + 3, "attribute", "green"),
        (ANSWER.index("two"), ANSWER.index("two") + 3, "count", "three"),
    ]
    clean = Correction.objects.get(response__text=CLEAN)
    assert clean.segments == [] and clean.corrected_text == CLEAN
    assert page.inner_text("#mine") == "2"


def test_the_types_are_defined_and_unsaved_marks_survive_a_reload(
    laptop_page, login, live_server, project_with, annotator, screenshot_dir
):
    """Each of the five types has a one-line definition beside its button; a marked span survives a reload
    (a draft kept for this project and task), and submitting it drops the draft."""
    project = project_with(
        "correction", [{"external_id": "d1", "prompt": "Describe.", "responses": [{"text": ANSWER}]}]
    )
    page = laptop_page
    login(page, annotator)
    url = f"{live_server.url}/projects/{project.slug}/annotate/"
    page.goto(url)
    page.wait_for_selector("#task:not([hidden])")
    definitions = page.inner_text("#type-help")
    for type_, meaning in [
        ("object", "not in the image"),
        ("attribute", "colour"),
        ("count", "wrong number"),
        ("position/relation", "left of"),
        ("other", "anything else"),
    ]:
        assert type_ in definitions and meaning in definitions
    assert page.is_visible("#type-help")

    mouse_select(page, "#answer-text", "two")
    page.keyboard.press("3")
    page.keyboard.type("three")
    page.keyboard.press("Enter")
    page.wait_for_selector("mark.seg")
    assignment = page.get_attribute("#task", "data-assignment")
    key = f"loupe-draft:{project.slug}:{assignment}"
    assert page.evaluate("(key) => localStorage.getItem(key) !== null", key)

    page.reload()
    page.wait_for_selector("#task:not([hidden])")
    assert page.get_attribute("#task", "data-assignment") == assignment
    page.wait_for_selector("mark.seg")
    assert page.inner_text("mark.seg") == "two"
    assert "three" in page.inner_text("#preview") and "Restored 1 unsaved mark" in page.inner_text("#status")
    page.screenshot(path=str(screenshot_dir / "correction-draft-restored-1366x768.png"))

    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#empty:not([hidden])")
    stored = Correction.objects.get()
    assert [(s["type"], s["replacement"]) for s in stored.segments] == [("count", "three")]
    assert page.evaluate("(key) => localStorage.getItem(key)", key) is None
