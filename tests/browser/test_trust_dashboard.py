"""A manager sees gold accuracy, trust and crowd-abuse flags on the dashboard, and freezes a snapshot without
the flagged annotators from the datasets page."""

import json
from pathlib import Path

import pytest

from annotation.models import DatasetSnapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _judge(project, user, *, choice_for, ms):
    from annotation import services

    while (assignment := services.assignment_next(project=project, annotator=user)) is not None:
        services.pairwise_judgment_submit(
            assignment_id=assignment.pk,
            annotator=user,
            choice=choice_for(assignment),
            client_request_id=f"r{assignment.pk}",
            time_spent_ms=ms,
        )


def test_the_trust_section_shows_flags_and_the_datasets_page_leaves_flagged_annotators_out(
    page, login, live_server, researcher, make_user, tmp_path, screenshot_dir
):
    from annotation import services
    from annotation.models import Response
    from annotation.services.gold import GoldEntry, gold_answers_set, gold_rate_set

    project = services.project_create(slug="trusty", kind="pairwise", created_by=researcher)
    lines = [
        {"external_id": f"i{n:02d}", "prompt": f"Scene {n}?", "responses": [{"text": f"one {n}"}, {"text": f"two {n}"}]}
        for n in range(14)
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    services.items_import(project=project, path=path)
    gold_answers_set(
        project=project, entries=[GoldEntry(external_id=f"i{n:02d}", answer={"choice": "a"}) for n in (0, 1)]
    )
    gold_rate_set(project=project, gold_rate=1.0)
    project = services.project_overlap_set(project=project, overlap=3)
    first = dict(Response.objects.filter(position=0).values_list("item_id", "pk"))
    careful, liner, hasty = (make_user(name) for name in ("carol", "lina", "hasty"))
    for user in (careful, liner, hasty):
        services.project_member_add(project=project, user=user)
    by_position = lambda a: "a" if a.shown_order[0] == first[a.item_id] else "b"  # noqa: E731
    _judge(project, careful, choice_for=by_position, ms=5000)
    _judge(project, liner, choice_for=lambda a: "b", ms=5000)
    _judge(project, hasty, choice_for=by_position, ms=400)

    login(page, researcher)
    page.goto(f"{live_server.url}/projects/trusty/dashboard/")
    section = page.locator("#trust")
    section.scroll_into_view_if_needed()
    assert "2 gold tasks" in section.inner_text()
    carol = page.locator("#trust-table tr[data-annotator='carol']")
    assert "2 / 2" in carol.inner_text() and "100%" in carol.inner_text() and "0.75" in carol.inner_text()
    assert page.locator("#trust-table tr[data-annotator='lina'] [data-flag='straight_lining']").is_visible()
    assert page.locator("#trust-table tr[data-annotator='hasty'] [data-flag='too_fast']").is_visible()
    section.screenshot(path=str(screenshot_dir / "dashboard_trust.png"))

    page.goto(f"{live_server.url}/projects/trusty/datasets/")
    page.check("#snapshot-form input[name=exclude_flagged]")
    page.fill("#snapshot-form input[name=test_fraction]", "0")
    page.click("#snapshot-form button[type=submit]")
    page.wait_for_function("() => /Snapshot \\d+/.test(document.getElementById('freeze-status').textContent)")
    snapshot = DatasetSnapshot.objects.get(project=project)
    assert snapshot.filters["exclude_flagged"] is True
    # Only carol's votes: one per ordinary item, the gold items left out.
    rows = [json.loads(line) for line in Path(snapshot.path).read_text().splitlines()]
    assert len(rows) == 12 and {row["n_votes"] for row in rows} == {1}
    page.locator("#snapshot-form").screenshot(path=str(screenshot_dir / "datasets_trust_filter.png"))
