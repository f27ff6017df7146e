"""The data browser and its task page in a real browser: from the dashboard to a listing with thumbnails,
answers and each annotator's correction as struck and inserted text; a search, j / k / Enter to open an
item, everything said about it, back to the same listing, and the empty state."""

import pytest

from annotation import services
from annotation.models import Response
from tests.annotation.feedback import correct, people, refresh

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXTS = [
    "A red circle is on the left of a blue square.",
    "Two green <b>triangles</b> are above a yellow circle.",
    "A small purple square is below a large orange circle.",
]


def test_a_manager_browses_filters_and_opens_an_item_with_the_keyboard(
    page, login, live_server, project_with, researcher, screenshot_dir
):
    items = [
        {"external_id": f"scene-{k}", "prompt": f"Describe scene {k}.", "responses": [{"text": text}]}
        for k, text in enumerate(TEXTS)
    ]
    project = project_with("correction", items, overlap=2)
    ann, bob = people("br-ann", 1)[0], people("br-bob", 1)[0]
    first = Response.objects.get(project=project, item__external_id="scene-1")
    green = {"start": 4, "end": 9, "type": "attribute", "replacement": "red", "original": "green"}
    correct(first, ann, [green], first.text.replace("green", "red", 1))
    correct(first, bob, [], first.text)
    other = Response.objects.get(project=project, item__external_id="scene-2")
    correct(other, ann, [], other.text)
    services.ai_feedback_record(
        response=first, labeler_model="tiny-labeler", claims=["Two green triangles", "above a yellow circle"],
        p_yes=[0.08, 0.91],
    )  # fmt: skip
    refresh(project)
    services.queue_units_sync(project=project)  # the slots the stored annotations fill, as after an import

    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{project.slug}/dashboard/")
    page.click("a:has-text('Data browser')")
    page.wait_for_url(f"{live_server.url}/projects/{project.slug}/data/")
    rows = page.locator("#browse-rows tr.browse-row")
    assert rows.count() == 3
    page.wait_for_function(
        "() => [...document.querySelectorAll('#browse-rows .thumb img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    row = page.locator("#browse-rows tr.browse-row", has_text="scene-1")
    assert row.locator("del").inner_text() == "green" and row.locator("ins").inner_text() == "red"
    assert "Two green <b>triangles</b>" in row.inner_text(), "model text shown as text, not markup"
    assert row.locator(".answer-excerpt b").count() == 0
    assert "disagree" in row.inner_text() and "AI -1.00" in row.inner_text()
    assert row.locator(".badge.done").count() == 1, "both of its two annotators answered"
    assert "br-ann0" in row.inner_text() and "br-bob0" in row.inner_text()
    page.screenshot(path=str(screenshot_dir / "data-browser.png"), full_page=True)

    page.select_option("#browse-filters select[name=agreement]", "disagree")
    page.click("#browse-filters button[type=submit]")
    page.wait_for_url("**agreement=disagree**")
    assert page.locator("#browse-rows tr.browse-row").count() == 1

    page.fill("#browse-filters input[name=q]", "circle")
    page.select_option("#browse-filters select[name=agreement]", "")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=circle**")
    assert page.locator("#browse-rows tr.browse-row").count() == 3
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("tr.browse-row.current").get_attribute("data-item") == str(first.item_id)
    page.keyboard.press("k")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project.slug}/data/{first.item_id}/**")
    assert page.inner_text("#task-prompt") == "Describe scene 1."
    notes = page.inner_text("#task-annotations")
    assert "br-ann0" in notes and "1 hallucinated span corrected" in notes and "no hallucination" in notes
    answer = page.inner_text(".task-answers")
    assert "Two green <b>triangles</b>" in answer and "P(yes) 0.08" in answer
    assert page.locator(".task-ai li.doubted").count() == 1
    assert page.locator("#task-pairs tbody tr").count() >= 1
    page.wait_for_function("() => document.querySelector('.task-item img').naturalWidth > 0")
    page.screenshot(path=str(screenshot_dir / "task-page.png"), full_page=True)

    page.click("#back-to-browser")
    page.wait_for_url("**q=circle**")
    assert page.input_value("#browse-filters input[name=q]") == "circle"
    page.fill("#browse-filters input[name=q]", "no such words anywhere")
    page.keyboard.press("Enter")
    page.wait_for_selector("#browse-empty")
    assert page.inner_text("#browse-empty") == "No items match these filters."
