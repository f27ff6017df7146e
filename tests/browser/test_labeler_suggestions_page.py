"""The AI labeler's suggestion on annotate pages in a real browser: the correction page marks the claims it
doubted with their P(yes) (in the suggestion box, not on the annotator's answer), the pairwise page says which
answer it prefers, and what the annotator did with it is recorded apart from their answer."""

import pytest

from annotation import services
from annotation.models import AIFeedback, AISuggestionUse, Correction, PairwiseJudgment, Response

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GOOD = "A red circle is on the left. A blue square is on the right."
BAD = "A green <b>star</b> is on the left. A blue square is on the right."


def _feedback(response, p_yes):
    claims = response.text.rstrip(".").split(". ")
    services.ai_feedback_record(response=response, labeler_model="tiny-labeler", claims=claims, p_yes=p_yes)


def test_the_correction_page_marks_the_doubted_claim_and_records_that_it_was_taken(
    page, login, live_server, project_with, annotator, screenshot_dir
):
    """The doubted first claim is marked with "P(yes) 0.12" in the suggestion box, the accepted one is not,
    the answer the annotator marks has no AI marks; marking a span inside the doubted claim stores the
    annotator's segment and a suggestion row that says it was taken."""
    from tests.browser.conftest import mouse_select

    project = project_with(
        "correction",
        [{"external_id": "c1", "prompt": "Describe.", "responses": [{"text": BAD}]}],
        show_ai_suggestions=True,
    )
    _feedback(Response.objects.get(project=project), [0.12, 0.93])
    AIFeedback.objects.update(rewrite={"text": "A green star? <i>No</i>: a red circle is on the left."})
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#ai:not([hidden]) mark.ai-doubted")
    marks = page.locator("#ai mark.ai-doubted")
    assert marks.count() == 1
    assert marks.inner_text() == "A green <b>star</b> is on the left"
    assert marks.get_attribute("title") == "P(yes) 0.12"
    assert "P(yes) 0.12" in page.inner_text("#ai .ai-marked")
    assert page.inner_text("#ai .ai-rewrite-text") == "A green star? <i>No</i>: a red circle is on the left."
    assert page.inner_text("#ai .ai-rewrite").startswith("Suggested correction: A green star? <i>No</i>")
    assert page.locator("#ai b, #answer-text b, #answer-text mark.ai-doubted").count() == 0

    mouse_select(page, "#answer-text", "green")
    page.keyboard.press("1")
    page.wait_for_selector("#editor:not([hidden])")
    page.keyboard.type("red")
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer-text mark.seg")
    page.screenshot(path=str(screenshot_dir / "labeler-suggestion-correction.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    correction = _wait_for_one(Correction)
    assert [(s["start"], s["end"]) for s in correction.segments] == [(BAD.index("green"), BAD.index("green") + 5)]
    use = _wait_for_one(AISuggestionUse)  # written just after the annotation's transaction, before the reply
    assert use.took is True and use.suggested == {
        "doubted": [[0, len("A green <b>star</b> is on the left")]],
        "rewrite": "A green star? <i>No</i>: a red circle is on the left.",
    }
    assert (use.rewrite_used, use.rewrite_edited) == (False, None)


ANSWER = "A red cube is on the left. A green star is on the right."
REWRITE = "A red cube is on the left. A blue circle is on the right, near the cube."


def test_use_it_takes_the_suggested_correction_to_edit_and_submit(
    page, login, live_server, project_with, annotator, screenshot_dir
):
    """The doubted claim is marked by its stored span with "P(yes) 0.12, from logits"; the hint names the U
    key; pressing U marks the rewrite's changes as segments whose preview is the rewrite; the annotator edits
    one and submits with Ctrl+Enter: the correction stored is the edited text, and the suggestion row says
    the rewrite was used and edited."""
    from annotation.services.preference_pairs import ai_feedback_rewrite_record

    project = project_with(
        "correction",
        [{"external_id": "c1", "prompt": "Describe.", "responses": [{"text": ANSWER}]}],
        show_ai_suggestions=True,
    )
    response = Response.objects.get(project=project)
    claims = ["A red cube is on the left", "A green star is on the right"]
    feedback = services.ai_feedback_record(
        response=response,
        labeler_model="tiny-labeler",
        claims=claims,
        p_yes=[0.91, 0.12],
        sources=["logits", "logits"],
        claim_spans=[[ANSWER.index(c), ANSWER.index(c) + len(c)] for c in claims],
    )
    ai_feedback_rewrite_record(feedback=feedback, text=REWRITE)
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#ai:not([hidden]) mark.ai-doubted")
    mark = page.locator("#ai mark.ai-doubted")
    assert mark.inner_text() == "A green star is on the right"
    assert mark.get_attribute("title") == "P(yes) 0.12, from logits"
    assert "A red cube is on the left — P(yes) 0.91, from logits" in page.inner_text("#ai ul")
    assert "U use the AI labeler's suggested correction" in page.inner_text("#instructions .keys")
    assert page.inner_text("#btn-use-rewrite") == "Use it U"

    page.focus("#answer-text")
    page.keyboard.press("u")
    page.wait_for_selector("#answer-text mark.seg")
    assert page.locator("#answer-text mark.seg").all_inner_texts() == ["green star", "right"]
    assert page.inner_text("#preview") == REWRITE
    assert "Took the suggested correction: 2 segments marked" in page.inner_text("#status")
    page.screenshot(path=str(screenshot_dir / "labeler-use-rewrite-taken.png"), full_page=True)

    page.locator("#answer-text mark.seg").first.click()
    page.wait_for_selector("#editor:not([hidden])")
    page.fill("#editor-replacement", "blue square")
    page.keyboard.press("Enter")
    page.wait_for_selector("#editor", state="hidden")
    edited = REWRITE.replace("circle", "square")
    assert page.inner_text("#preview") == edited
    page.screenshot(path=str(screenshot_dir / "labeler-use-rewrite-edited.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    correction = _wait_for_one(Correction)
    assert correction.corrected_text == edited
    assert [(s["original"], s["replacement"]) for s in correction.segments] == [
        ("green star", "blue square"),
        ("right", "right, near the cube"),
    ]
    use = _wait_for_one(AISuggestionUse)
    assert (use.rewrite_used, use.rewrite_edited, use.took) == (True, True, True)


def test_the_pairwise_page_says_which_answer_the_labeler_prefers(
    page, login, live_server, project_with, annotator, screenshot_dir
):
    """The suggestion names the answer with the higher score by its side as shown; choosing the other one is
    stored as chosen and recorded as not taking the suggestion."""
    project = project_with(
        "pairwise",
        [{"external_id": "p1", "prompt": "Describe.", "responses": [{"text": GOOD}, {"text": BAD}]}],
        show_ai_suggestions=True,
    )
    good, bad = Response.objects.filter(project=project).order_by("position")
    _feedback(good, [0.9, 0.8])
    _feedback(bad, [0.1, 0.2])
    login(page, annotator)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    page.wait_for_selector("#ai:not([hidden]) .ai-prefers")
    good_side = "A" if page.inner_text("#answer-a .text") == GOOD else "B"
    assert page.inner_text("#ai .ai-prefers") == f"The labeler prefers {good_side} (score 0.00 against -2.00)."
    page.screenshot(path=str(screenshot_dir / "labeler-suggestion-pairwise.png"), full_page=True)
    page.keyboard.press("2" if good_side == "A" else "1")  # the other answer
    judgment = _wait_for_one(PairwiseJudgment)
    assert judgment.choice == ("b" if good_side == "A" else "a")
    use = _wait_for_one(AISuggestionUse)
    assert use.took is False and use.suggested["prefers"] == good.pk


def _wait_for_one(model):
    from tests.helpers import wait_for

    return wait_for(lambda: model.objects.first(), timeout=10, interval=0.1, message=f"a {model.__name__}")
