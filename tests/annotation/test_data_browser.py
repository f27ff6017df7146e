"""The data browser (`/projects/<slug>/data/`, `GET /api/v1/projects/<slug>/browse/`), its task page and the
admin's preference-pair list: what each filter keeps, search, sorting, cursor paging, who may look, and
that a page costs the same few queries whatever its size."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation import services
from annotation.models import (
    AISuggestionUse,
    AnnotationReview,
    Item,
    PairwiseJudgment,
    PreferencePair,
    Project,
    Role,
)
from tests.annotation.feedback import correct, judge, people, project_with_items, rank, rate, refresh, responses_of

pytestmark = [pytest.mark.django_db]


def browse(client, slug: str, **params):
    answer = client.get(f"/api/v1/projects/{slug}/browse/", params)
    assert answer.status_code == 200, answer.content
    return answer.json()


def ids(body) -> list[str]:
    return [row["external_id"] for row in body["results"]]


@pytest.fixture
def pairwise(researcher):
    """Five pairwise items judged by two annotators with overlap 2 (sides shuffled per annotator):
    i1 both prefer answer 1; i2 both prefer answer 1, seen on opposite sides; i3 they prefer different
    answers (judged three days ago); i4 a tie against a preference; i5 unjudged, with an AI verdict and
    "zebra" in its prompt, "giraffe" in an answer."""
    project = project_with_items(
        "browse-pw",
        "pairwise",
        {f"i{k}": [f"first answer {k}", f"second answer {k}"] for k in range(1, 5)} | {"i5": ["a giraffe", "b"]},
        created_by=researcher,
    )
    Item.objects.filter(project=project, external_id="i5").update(prompt="What does the zebra do?")
    Project.objects.filter(pk=project.pk).update(overlap=2)
    project.refresh_from_db()
    ann, bob = people("pw-ann", 1)[0], people("pw-bob", 1)[0]
    for user in (ann, bob):
        services.project_member_add(project=project, user=user)
    r = {f"i{k}": responses_of(project, f"i{k}") for k in range(1, 6)}
    judge(r["i1"][0], r["i1"][1], ann, "a")
    judge(r["i1"][0], r["i1"][1], bob, "a")
    judge(r["i2"][0], r["i2"][1], ann, "a")
    judge(r["i2"][1], r["i2"][0], bob, "b")  # bob saw answer 1 on the right and preferred it
    judge(r["i3"][0], r["i3"][1], ann, "a")
    judge(r["i3"][1], r["i3"][0], bob, "a")  # answer 2 on the left, preferred
    judge(r["i4"][0], r["i4"][1], ann, "tie")
    judge(r["i4"][0], r["i4"][1], bob, "b")
    PairwiseJudgment.objects.filter(item__external_id="i3").update(created_at=timezone.now() - timedelta(days=3))
    Item.objects.filter(project=project).exclude(external_id="i5").update(done_count=2)
    services.ai_feedback_record(response=r["i5"][0], labeler_model="tiny-labeler", claims=["a giraffe"], p_yes=[0.2])
    return project, ann, bob


# JSON comparisons and keyset conditions differ between databases: this and the next two also run on
# PostgreSQL (platform/test.sh).
@pytest.mark.production_path
def test_each_filter_keeps_the_items_it_names(pairwise, researcher, api_client_for):
    """Annotator, status, feedback, agreement (sides resolved to answers), date and search each keep
    exactly the items a manager would pick by hand."""
    project, ann, bob = pairwise
    client = api_client_for(researcher)
    slug = project.slug
    assert ids(browse(client, slug)) == ["i1", "i2", "i3", "i4", "i5"]
    assert ids(browse(client, slug, annotator=bob.username)) == ["i1", "i2", "i3", "i4"]
    assert ids(browse(client, slug, status="done")) == ["i1", "i2", "i3", "i4"]
    assert ids(browse(client, slug, status="open")) == ["i5"]
    assert ids(browse(client, slug, agreement="disagree")) == ["i3", "i4"]
    assert ids(browse(client, slug, agreement="agree")) == ["i1", "i2"]
    assert ids(browse(client, slug, feedback="ai")) == ["i5"]
    assert ids(browse(client, slug, feedback="no_ai")) == ["i1", "i2", "i3", "i4"]
    assert ids(browse(client, slug, feedback="no_human")) == ["i5"]
    assert ids(browse(client, slug, feedback=["human", "ai"])) == [], "several kinds: all must hold"
    today = timezone.localdate().isoformat()
    assert ids(browse(client, slug, date_from=today)) == ["i1", "i2", "i4"]
    old = (timezone.localdate() - timedelta(days=3)).isoformat()
    assert ids(browse(client, slug, date_from=old, date_to=old, annotator=ann.username)) == ["i3"]
    assert ids(browse(client, slug, q="ZEBRA")) == ["i5"], "prompt, case-insensitive"
    assert ids(browse(client, slug, q="giraffe")) == ["i5"], "an answer's text"
    assert ids(browse(client, slug, q="i3")) == ["i3"], "the external id"

    row = {r["external_id"]: r for r in browse(client, slug)["results"]}
    assert row["i3"]["agreement"] == "disagree" and row["i2"]["agreement"] == "agree"
    summaries = sorted(a["summary"] for a in row["i2"]["annotations"])
    assert summaries == ["Answer 1 slightly better than Answer 2"] * 2, "bob's B on swapped sides is answer 1"
    assert {a["annotator"] for a in row["i4"]["annotations"]} == {ann.username, bob.username}
    assert row["i4"]["status"] == "done" and row["i5"]["status"] == "open"
    ai = row["i5"]["responses"][0]["ai_feedback"][0]
    assert ai["labeler_model"] == "tiny-labeler" and ai["claims"] == [{"claim": "a giraffe", "p_yes": 0.2}]


@pytest.mark.production_path
def test_disagreement_and_corrections_in_the_other_kinds(researcher, api_client_for):
    """Correction: one marks a hallucination where another marks none; rating: two levels for one caption;
    ranking: two orders. A correction shows as struck and inserted text."""
    client = api_client_for(researcher)
    a, b = people("kind-a", 1)[0], people("kind-b", 1)[0]

    fix = project_with_items(
        "browse-fix", "correction", {"c1": ["a red cat sits"], "c2": ["one dog"]}, created_by=researcher
    )
    (c1,), (c2,) = responses_of(fix, "c1"), responses_of(fix, "c2")
    red = {"start": 2, "end": 5, "type": "attribute", "replacement": "blue", "original": "red"}
    correct(c1, a, [red], "a blue cat sits")
    correct(c1, b, [], c1.text)
    correct(c2, a, [], c2.text)
    correct(c2, b, [], c2.text)
    assert ids(browse(client, fix.slug, agreement="disagree")) == ["c1"]
    assert ids(browse(client, fix.slug, agreement="agree")) == ["c2"]
    assert ids(browse(client, fix.slug, feedback="correction")) == ["c1"]
    marked = next(n for n in browse(client, fix.slug)["results"][0]["annotations"] if n["segments"])
    assert marked["diff"] == [
        {"op": "same", "text": "a ", "type": ""},
        {"op": "del", "text": "red", "type": "attribute"},
        {"op": "ins", "text": "blue", "type": "attribute"},
        {"op": "same", "text": " cat sits", "type": ""},
    ]
    assert marked["summary"] == "Answer 1: 1 hallucinated span corrected"

    rated = project_with_items("browse-rate", "rating", {"r1": ["caption"], "r2": ["other"]}, created_by=researcher)
    rate(responses_of(rated, "r1")[0], a, 0)
    rate(responses_of(rated, "r1")[0], b, 2)
    rate(responses_of(rated, "r2")[0], a, 1)
    rate(responses_of(rated, "r2")[0], b, 1)
    assert ids(browse(client, rated.slug, agreement="disagree")) == ["r1"]
    assert ids(browse(client, rated.slug, agreement="agree")) == ["r2"]
    levels = {n["summary"] for n in browse(client, rated.slug)["results"][0]["annotations"]}
    assert levels == {"Answer 1: unfunny", "Answer 1: funny"}

    ranked = project_with_items(
        "browse-rank", "ranking", {"k1": ["x", "y", "z"], "k2": ["x", "y"]}, created_by=researcher
    )
    x, y, z = responses_of(ranked, "k1")
    rank([x, y, z], a)
    rank([x, z, y], b)
    rank(responses_of(ranked, "k2"), a)
    rank(responses_of(ranked, "k2"), b)
    assert ids(browse(client, ranked.slug, agreement="disagree")) == ["k1"]
    assert ids(browse(client, ranked.slug, agreement="agree")) == ["k2"]
    assert {n["summary"] for n in browse(client, ranked.slug)["results"][0]["annotations"]} == {
        "Answer 1 > Answer 2 > Answer 3",
        "Answer 1 > Answer 3 > Answer 2",
    }


def _walk(client, slug: str, **params) -> list[str]:
    body = browse(client, slug, **params)
    seen = ids(body)
    while body["next"]:
        body = client.get(body["next"]).json()
        seen += ids(body)
    return seen


@pytest.mark.production_path
def test_cursor_paging_visits_every_item_once_in_each_sort_and_back(researcher, api_client_for):
    project = project_with_items(
        "browse-pages", "pairwise", {f"e{k:02d}": ["a", "b"] for k in range(11)}, created_by=researcher
    )
    for k, item in enumerate(Item.objects.filter(project=project).order_by("pk")):
        Item.objects.filter(pk=item.pk).update(done_count=k % 3)
    client = api_client_for(researcher)
    by_import = [f"e{k:02d}" for k in range(11)]
    assert _walk(client, project.slug, limit=4) == by_import
    assert _walk(client, project.slug, limit=4, sort="-id") == by_import[::-1]
    assert _walk(client, project.slug, limit=3, sort="-external_id") == sorted(by_import, reverse=True)
    fewest = sorted(by_import, key=lambda e: (int(e[1:]) % 3, int(e[1:])))
    assert _walk(client, project.slug, limit=2, sort="annotations") == fewest
    most = sorted(by_import, key=lambda e: (-(int(e[1:]) % 3), -int(e[1:])))
    assert _walk(client, project.slug, limit=5, sort="-annotations") == most

    first = browse(client, project.slug, limit=4)
    assert first["previous"] is None and (first["matches"], first["matches_capped"]) == (11, False)
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    assert ids(third) == by_import[8:] and third["next"] is None
    back = client.get(third["previous"]).json()
    assert ids(back) == ids(second) == by_import[4:8]
    assert ids(client.get(back["previous"]).json()) == by_import[:4]
    assert client.get(back["previous"]).json()["previous"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "not-a-cursor"}, "after"),
        ({"before": "WzFd", "sort": "external_id"}, "before"),  # [1]: an id where an external id belongs
        ({"limit": "0"}, "limit"),
        ({"limit": "10000"}, "limit"),
        ({"sort": "prompt"}, "sort"),
        ({"status": "finished"}, "status"),
        ({"feedback": "maybe"}, "feedback"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-05-02", "date_to": "2026-05-01"}, "date_to"),
        ({"annotator": "nobody-here"}, "annotator"),
    ],
)
def test_bad_queries_are_a_400_naming_the_field(researcher, api_client_for, params, field):
    project = project_with_items("browse-bad", "pairwise", {"x": ["a", "b"]}, created_by=researcher)
    answer = api_client_for(researcher).get(f"/api/v1/projects/{project.slug}/browse/", params)
    assert answer.status_code == 400
    body = answer.json()
    assert field in body["extra"].get("fields", {}) or body["extra"].get("field") == field, body
    page = Client()
    page.force_login(researcher)
    shown = page.get(f"/projects/{project.slug}/data/", params)
    assert shown.status_code == 400 and field.encode() in shown.content


def test_only_managers_reviewers_and_staff_may_browse(researcher, annotator, make_user, admin_user, api_client_for):
    """The project's annotator: the API's 404 and the page's 403; another project's manager, and anyone
    outside: the 404 of a project that does not exist; a reviewer and staff read it."""
    project = project_with_items("browse-who", "pairwise", {"x": ["a", "b"]}, created_by=researcher)
    services.project_member_add(project=project, user=annotator)
    reviewer = make_user("rita-reviewer")
    services.project_member_add(project=project, user=reviewer, role=Role.REVIEWER)
    other_manager = make_user("oskar-other")
    services.project_create(slug="elsewhere", kind="pairwise", created_by=other_manager)
    item = Item.objects.get(project=project)
    urls = [f"/projects/{project.slug}/data/", f"/projects/{project.slug}/data/{item.pk}/"]
    apis = [f"/api/v1/projects/{project.slug}/browse/", f"/api/v1/projects/{project.slug}/browse/{item.pk}/"]
    for user, page_status, api_status in (
        (annotator, 403, 404),
        (other_manager, 404, 404),
        (reviewer, 200, 200),
        (admin_user, 200, 200),
        (researcher, 200, 200),
    ):
        page = Client()
        page.force_login(user)
        for url in urls:
            assert page.get(url).status_code == page_status, (user.username, url)
        for url in apis:
            assert api_client_for(user).get(url).status_code == api_status, (user.username, url)
    assert api_client_for(None).get(apis[0]).status_code in (401, 403)
    assert Client().get(urls[0]).status_code == 302, "to the login page"
    other = project_with_items("browse-other", "pairwise", {"y": ["a", "b"]}, created_by=other_manager)
    stranger = Item.objects.get(project=other)
    assert api_client_for(researcher).get(f"{apis[0]}{stranger.pk}/").status_code == 404, "an item of another project"


def _busy_project(researcher, n: int):
    project = project_with_items(
        "browse-busy", "pairwise", {f"b{k:03d}": ["a", "b"] for k in range(n)}, created_by=researcher
    )
    annotators = people("busy", 3)
    for external_id in (f"b{k:03d}" for k in range(n)):
        first, second = responses_of(project, external_id)
        for user in annotators:
            judge(first, second, user, "a")
        services.ai_feedback_record(response=first, labeler_model="m", claims=["c"], p_yes=[0.9])
    refresh(project)
    return project


def test_a_page_costs_the_same_few_queries_whatever_its_size(researcher, api_client_for, django_assert_max_num_queries):
    """Answers, annotations, AI verdicts and pair counts of a page are read in a fixed number of queries:
    2 rows or 30, first page or next, the API and the page cost the same."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    project = _busy_project(researcher, 32)
    client = api_client_for(researcher)
    page = Client()
    page.force_login(researcher)
    counts = []
    for limit in (2, 30):
        with django_assert_max_num_queries(12), CaptureQueriesContext(connection) as api_queries:
            body = browse(client, project.slug, limit=limit, feedback="human", sort="-annotations")
        assert len(body["results"]) == limit
        assert all(len(row["annotations"]) == 3 and row["n_pairs"] >= 1 for row in body["results"])
        with django_assert_max_num_queries(14), CaptureQueriesContext(connection) as page_queries:
            assert page.get(f"/projects/{project.slug}/data/", {"limit": limit}).status_code == 200
        with django_assert_max_num_queries(12), CaptureQueriesContext(connection) as next_queries:
            assert len(client.get(body["next"]).json()["results"]) == (2 if limit == 30 else limit)
        counts.append((len(api_queries), len(page_queries), len(next_queries)))
    assert counts[0] == counts[1], counts


def test_the_task_page_shows_everything_said_about_one_item_escaped(researcher, annotator, api_client_for):
    project = project_with_items(
        "browse-task", "pairwise", {"t1": ["<b>bold</b> answer", "plain answer"]}, created_by=researcher
    )
    Item.objects.filter(project=project).update(prompt="<script>alert('prompt')</script> What is shown?")
    first, second = responses_of(project, "t1")
    judgment = judge(first, second, annotator, "b", strength=2)
    PairwiseJudgment.objects.filter(pk=judgment.pk).update(reason="<img src=x onerror=alert(1)> shorter")
    services.ai_feedback_record(
        response=first, labeler_model="tiny-labeler", claims=["bold", "answer"], p_yes=[0.1, 0.95]
    )
    AISuggestionUse.objects.create(
        project=project, item=first.item, annotator=annotator, kind="pairwise", annotation_id=judgment.pk,
        labeler_model="tiny-labeler", suggested={"prefers": second.pk}, took=True,
    )  # fmt: skip
    judgment.refresh_from_db()
    AnnotationReview.objects.create(
        project=project, kind="pairwise", annotation_id=judgment.pk, annotator=annotator, reviewer=researcher,
        decision="rejected", comment="<i>too short</i>", annotation_updated_at=judgment.updated_at,
        client_request_id="review-1",
    )  # fmt: skip
    refresh(project)
    assert PreferencePair.objects.filter(item=first.item).exists()

    page = Client()
    page.force_login(researcher)
    html = page.get(f"/projects/{project.slug}/data/{first.item_id}/", {"back": "q=t1&sort=-id"}).content.decode()
    assert "&lt;script&gt;alert(&#x27;prompt&#x27;)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; answer" in html and "<b>bold</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; shorter" in html
    assert "Answer 2 clearly better than Answer 1" in html and annotator.username in html
    assert "P(yes) 0.10" in html and "P(yes) 0.95" in html and 'class="doubted"' in html
    assert 'id="task-suggestions"' in html and "tiny-labeler" in html
    assert f"rejected by {researcher.username}" in html and "Review: &lt;i&gt;too short&lt;/i&gt;" in html
    assert 'data-pair="' in html
    assert f'href="/projects/{project.slug}/data/?q=t1&amp;sort=-id"' in html, "back to the same listing"

    detail = api_client_for(researcher).get(f"/api/v1/projects/{project.slug}/browse/{first.item_id}/").json()
    assert detail["suggestion_uses"][0]["took"] is True
    assert detail["annotations"][0]["review"]["decision"] == "rejected"
    assert {p["source"] for p in detail["pairs"]} >= {"pairwise"}
    pair = next(p for p in detail["pairs"] if p["source"] == "pairwise")
    assert (pair["chosen"], pair["rejected"]) == ("Answer 2", "Answer 1")

    listing = page.get(f"/projects/{project.slug}/data/").content.decode()
    assert "&lt;script&gt;" in listing and "<script>alert" not in listing
    empty = page.get(f"/projects/{project.slug}/data/", {"q": "nothing like this"}).content.decode()
    assert "No items match these filters." in empty


def test_the_dashboard_links_the_browser_and_each_task_to_its_page(researcher, admin_user):
    project = project_with_items("browse-dash", "correction", {"d1": ["one", "two"]}, created_by=researcher)
    page = Client()
    page.force_login(researcher)
    html = page.get(f"/projects/{project.slug}/dashboard/").content.decode()
    item = Item.objects.get(project=project)
    assert f'href="/projects/{project.slug}/data/"' in html
    assert html.count(f'href="/projects/{project.slug}/data/{item.pk}/"') == 2, "both answers' rows"


def test_the_admin_pair_list_shows_what_a_researcher_checks(researcher, admin_user, django_assert_max_num_queries):
    project = project_with_items(
        "browse-admin", "pairwise", {"p1": ["long " * 40 + "winner", "loser"]}, created_by=researcher
    )
    winner, loser = responses_of(project, "p1")
    for user in people("adm", 2):
        judge(winner, loser, user, "a")
    refresh(project)
    client = Client()
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        html = client.get("/admin/annotation/preferencepair/", {"source": "pairwise"}).content.decode()
    assert "browse-admin" in html and f'href="/projects/{project.slug}/data/{winner.item_id}/"' in html
    assert "long long" in html and "…" in html and "loser" in html, "excerpts of both texts"
    assert "1.0" in html, "margin and agreement"
    assert client.get("/admin/annotation/preferencepair/", {"q": "p1"}).status_code == 200
    pair = PreferencePair.objects.filter(project=project).first()
    assert client.get(f"/admin/annotation/preferencepair/{pair.pk}/change/").status_code == 200, "read-only form"
    assert "0 preference pairs" in client.get("/admin/annotation/preferencepair/", {"source": "ai"}).content.decode()
