"""The dashboard's live caption table in Chromium: ranked by mean, sorted by a header click, searched and paged on
the server, with the caption-contest CSV a click away; no script error or CSP violation."""

import pytest

from annotation import services
from annotation.models import Item, Response

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_caption_table_ranks_sorts_searches_and_pages(page, login, live_server, researcher, screenshot_dir):
    project = services.project_create(slug="contest-table", kind="rating", created_by=researcher)
    item = Item.objects.create(project=project, external_id="cartoon-7", prompt="Caption this")
    levels = project.rating_levels
    # 60 captions: caption k has k funny votes of 60, so caption 59 is the best; "bank" in every tenth.
    Response.objects.bulk_create(
        [
            Response(
                item=item,
                position=k,
                text=f"caption {k}" + (" about the bank" if k % 10 == 0 else ""),
                meta={"rating_counts": {levels[0]: 60 - k, levels[1]: 0, levels[2]: k}},
            )
            for k in range(60)
        ]
    )
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    login(page, researcher)
    page.goto(f"{live_server.url}/projects/{project.slug}/dashboard/")
    card = page.locator("#captions")
    card.scroll_into_view_if_needed()
    rows = card.locator("#caption-table tbody tr")
    page.wait_for_function("() => document.querySelector('#caption-table tbody tr[data-response-id]') !== null")
    assert rows.count() == 50
    assert rows.nth(0).locator("td").nth(1).inner_text() == "caption 59"
    assert card.locator("#caption-range").inner_text() == "1–50 of 60"
    card.screenshot(path=str(screenshot_dir / "dashboard_captions.png"))

    card.locator("#caption-next").click()
    page.wait_for_function("() => document.querySelector('#caption-range').textContent === '51–60 of 60'")
    assert rows.nth(0).locator("td").nth(0).inner_text() == "51"

    card.locator("button.sort[data-sort=rank]").click()  # rank again: worst first
    page.wait_for_function(
        "() => document.querySelector('#caption-table tbody tr td:nth-child(2)').textContent.startsWith('caption 0')"
    )
    assert card.locator("#caption-range").inner_text() == "1–50 of 60"

    card.locator("#caption-search").fill("BANK")
    page.wait_for_function("() => document.querySelector('#caption-range').textContent === '1–6 of 6'")
    assert all("bank" in rows.nth(k).inner_text() for k in range(6))
    export = card.locator("a[data-export]")
    assert export.get_attribute("href").endswith("/captions/export/?item=cartoon-7")
    card.screenshot(path=str(screenshot_dir / "dashboard_captions_search.png"))
    assert errors == []
