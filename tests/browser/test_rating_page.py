"""Crowd rating in a real browser: an anonymous visitor of a public project rates captions with keys,
never sees a caption twice, and stops at the project's quota."""

import pytest

from annotation.models import CrowdParticipant, Rating

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CAPTIONS = ["I said I wanted a window seat.", "Is this the express?", "We're going to need a bigger desk.", "Fine."]


def test_an_anonymous_participant_rates_captions_with_keys_until_the_quota(
    page, live_server, project_with, screenshot_dir
):
    """Keys 1..3 store the project's levels for the caption shown, under one anonymous participant held
    by an HttpOnly cookie; after `public_quota` answers the page says the limit is reached."""
    project = project_with(
        "rating",
        [
            {
                "external_id": "cartoon-1",
                "prompt": "Which caption is funny?",
                "responses": [{"text": t} for t in CAPTIONS],
            }
        ],
        visibility="public",
        public_quota=3,
        instructions="Rate how funny each caption is for this cartoon.",
    )
    page.goto(f"{live_server.url}/crowd/{project.slug}/")
    page.wait_for_selector("#task:not([hidden])")
    page.wait_for_function("() => document.getElementById('item-image').naturalWidth > 0")
    assert page.inner_text("#caption") in CAPTIONS
    page.screenshot(path=str(screenshot_dir / "rating.png"), full_page=True)

    seen = []
    for key in ("3", "1", "2"):
        assignment = page.get_attribute("#task", "data-assignment")
        seen.append((page.inner_text("#caption"), int(key) - 1))
        page.keyboard.press(key)
        page.wait_for_function(
            f"() => document.getElementById('task').dataset.assignment !== '{assignment}' "
            "|| !document.getElementById('empty').hidden"
        )
    page.wait_for_selector("#empty:not([hidden])")
    assert "limit of 3" in page.inner_text("#empty-message")

    participant = CrowdParticipant.objects.select_related("user").get()
    assert not participant.user.is_active and not participant.user.has_usable_password()
    stored = [(r.response.text, r.level) for r in Rating.objects.select_related("response").order_by("id")]
    assert stored == seen
    assert len({text for text, _ in stored}) == 3, "a caption was shown twice"
    assert all(r.annotator_id == participant.user_id for r in Rating.objects.all())
    cookie = next(c for c in page.context.cookies() if c["name"] == "loupe_participant")
    assert cookie["httpOnly"]
