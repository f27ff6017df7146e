"""The pairwise page in a real browser: an annotator judges with the keyboard, with strength and reason,
and goes back to change an answer."""

import pytest

from annotation import services
from annotation.models import PairwiseJudgment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_judges_by_keyboard_and_amends_an_answer(
    page, login, live_server, pairwise_project, shapes_import, annotator, screenshot_dir
):
    """Keys store A / B (clearly) / both bad for the answers as shown, a reason typed after R goes with the
    next choice, and Backspace reopens the last answer, which a new key replaces."""
    services.items_import(project=pairwise_project, path=shapes_import)
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    page.wait_for_function("document.getElementById('item-image').naturalWidth > 0")
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
        page.wait_for_function(f"document.getElementById('task').dataset.assignment !== '{assignment}'")
    assert page.inner_text("#mine") == "3"

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
