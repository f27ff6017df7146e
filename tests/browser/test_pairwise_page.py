"""The pairwise page in a real browser: an annotator judges items with the keyboard."""

import pytest

from annotation import services
from annotation.models import PairwiseJudgment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_annotator_judges_by_keyboard_and_gets_the_next_task(
    page, login, live_server, pairwise_project, shapes_import, annotator, screenshot_dir
):
    """Keys 1, 2 and 3 store A, B and tie for the shown answers, and the next task appears each time."""
    services.items_import(project=pairwise_project, path=shapes_import)
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    page.wait_for_function("document.getElementById('item-image').naturalWidth > 0")
    page.screenshot(path=str(screenshot_dir / "pairwise.png"), full_page=True)

    shown = []
    for key in ("1", "2", "3"):
        assignment = page.get_attribute("#task", "data-assignment")
        shown.append(
            (int(assignment), page.inner_text("#answer-a .text"), page.inner_text("#answer-b .text"), key)
        )
        page.keyboard.press(key)
        page.wait_for_function(f"document.getElementById('task').dataset.assignment !== '{assignment}'")

    assert page.inner_text("#mine") == "3"
    for assignment_id, left, right, key in shown:
        judgment = PairwiseJudgment.objects.select_related("response_a", "response_b").get(
            assignment_id=assignment_id
        )
        assert judgment.choice == {"1": "a", "2": "b", "3": "tie"}[key]
        assert (judgment.response_a.text, judgment.response_b.text) == (left, right)


def test_model_text_is_shown_as_text_never_as_html(
    page, login, live_server, pairwise_project, annotator, tmp_path
):
    """An answer holding a script tag is displayed literally and runs nothing."""
    import json

    payload = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
    path = tmp_path / "evil.jsonl"
    path.write_text(
        json.dumps({"external_id": "evil", "prompt": payload, "responses": [{"text": payload}, {"text": "fine"}]})
    )
    services.items_import(project=pairwise_project, path=path)
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{pairwise_project.slug}/annotate/")
    page.wait_for_selector("#task:not([hidden])")
    assert page.inner_text("#item-prompt") == payload
    assert payload in (page.inner_text("#answer-a .text"), page.inner_text("#answer-b .text"))
    assert page.evaluate("window.__pwned") is None
