"""The dashboard's agreement card in Chromium: a row per annotator with the AI labeler among them, and the plot
of each annotator's alpha against the people's, drawn without a script (the page's CSP allows none inline)."""

import random

import pytest

from annotation import services
from tests.annotation.feedback import judge, people, project_with_items, responses_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_agreement_card_lists_and_plots_every_annotator_and_the_labeler(
    page, login, live_server, researcher, screenshot_dir
):
    """Four people judge twelve pairs (three of them mostly agree, one answers at random); the labeler agrees
    with the majority. The card shows six rows (people, four persons, the labeler) and five bars: the random
    annotator's is the lowest, and the labeler's stands apart in colour."""
    items = {f"i{k}": [f"answer {k}a", f"answer {k}b"] for k in range(12)}
    project = project_with_items("agree-plot", "pairwise", items, created_by=researcher)
    persons = people("judge", 4)
    chance = random.Random(3)
    for k in range(12):
        first, second = responses_of(project, f"i{k}")
        truth = "a" if k % 3 else "b"
        for index, person in enumerate(persons):
            if index == 3:
                choice = chance.choice(["a", "b", "tie"])
            else:
                choice = truth if (k + index) % 6 else ("b" if truth == "a" else "a")
            judge(first, second, person, choice)
        better, worse = (first, second) if truth == "a" else (second, first)
        services.ai_feedback_record(response=better, labeler_model="tiny-vlm", claims=["c"], p_yes=[0.9])
        services.ai_feedback_record(response=worse, labeler_model="tiny-vlm", claims=["c"], p_yes=[0.2])

    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{project.slug}/dashboard/")
    card = page.locator("#agreement")
    card.scroll_into_view_if_needed()
    assert card.locator("#agreement-table tbody tr").count() == 6
    assert "AI labeler tiny-vlm" in card.locator("tr[data-who=labeler]").inner_text()
    bars = card.locator("rect.agreement-bar")
    assert bars.count() == 5
    card.screenshot(path=str(screenshot_dir / "dashboard_agreement.png"))
    values = [float(bars.nth(k).get_attribute("data-value")) for k in range(5)]
    assert values[3] == min(values), values  # judge3, the random one
    boxes = [bars.nth(k).bounding_box() for k in range(5)]
    zero = boxes[0]["x"] if values[0] >= 0 else boxes[0]["x"] + boxes[0]["width"]
    for value, box in zip(values, boxes, strict=True):  # drawn from 0, to the right for positive values
        assert (box["x"] >= zero - 1) if value >= 0 else (box["x"] + box["width"] <= zero + 1), (value, box)
    assert card.locator("rect.agreement-bar[data-labeler=true]").count() == 1
    assert card.locator("line#agreement-people").count() == 1  # the people's alpha
