"""Text from models, crowds and researchers is shown as text on every page, never run as HTML."""

import pytest

from annotation.models import AIFeedback, Response

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>"\'&'


def test_script_and_html_payloads_are_shown_literally_everywhere(
    page, login, live_server, project_with, researcher, annotator, screenshot_dir
):
    """A payload in the project name, instructions, scale, prompt, every answer, a caption, a reason and
    an AI suggestion is displayed as typed on the four annotate pages and the dashboard, and runs nothing."""
    rows = [{"external_id": "evil", "prompt": PAYLOAD, "responses": [{"text": PAYLOAD}, {"text": f"fine {PAYLOAD}"}]}]
    options = {"name": PAYLOAD, "instructions": PAYLOAD, "show_ai_suggestions": True}
    projects = {
        "pairwise": project_with("pairwise", rows, **options),
        "correction": project_with("correction", rows, hallucination_types=[PAYLOAD, "other"], **options),
        "rating": project_with("rating", rows, rating_levels=["meh", PAYLOAD], **options),
        "ranking": project_with("ranking", rows, **options),
    }
    for response in Response.objects.all():
        AIFeedback.objects.create(
            response=response, labeler_model=PAYLOAD, claims=[PAYLOAD], questions=[PAYLOAD], p_yes=[0.2], score=-1
        )
    login(page, annotator)
    for kind, project in projects.items():
        page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
        page.wait_for_selector("#task:not([hidden])")
        assert page.inner_text("#item-prompt") == PAYLOAD, kind
        assert page.inner_text("h1") == PAYLOAD
        assert PAYLOAD in page.inner_text("#instructions")
        assert PAYLOAD in page.inner_text("#task"), kind
        assert PAYLOAD in page.inner_text("#ai-body"), kind
        if kind == "pairwise":
            page.keyboard.press("r")
            page.keyboard.type(PAYLOAD)
            page.keyboard.press("Escape")
            page.keyboard.press("1")
            page.wait_for_selector("#empty:not([hidden])")
            page.keyboard.press("Backspace")
            page.wait_for_selector("#amend:not([hidden])")
            assert page.input_value("#reason") == PAYLOAD
        if kind == "correction":
            assert PAYLOAD in page.inner_text("#types")
            page.screenshot(path=str(screenshot_dir / "escaping.png"), full_page=True)
        if kind == "rating":
            assert PAYLOAD in page.inner_text("#levels")
        assert page.evaluate("window.__pwned") is None, kind

    page.context.clear_cookies()
    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{projects['pairwise'].slug}/dashboard/")
    assert PAYLOAD in page.inner_text("#tasks")
    assert page.evaluate("window.__pwned") is None
