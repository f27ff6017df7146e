"""The live caption table of a rating project (API and dashboard) and its caption-contest CSV export."""

import csv
import io
import uuid

import pytest

from annotation import services
from annotation.formats.caption_contest import read_caption_contest_csv
from annotation.models import Item, Response
from annotation.pair_rules import HUMOR_SCALE, RatingAggregate

pytestmark = [pytest.mark.production_path]  # raw SQL over JSON metadata: PostgreSQL hands back dicts

LEVELS = ["unfunny", "somewhat funny", "funny"]


@pytest.fixture
def contest(researcher, annotator, make_user):
    """Five captions: three imported with counts, one imported as a summary only, one new; then the
    project's own raters add ratings through the queue."""
    project = services.project_create(
        slug="contest", kind="rating", created_by=researcher, overlap=10, rating_levels=LEVELS
    )
    services.project_member_add(project=project, user=annotator)
    item = Item.objects.create(project=project, external_id="cartoon-1", prompt="Caption this")
    metas = [
        {"rating_counts": {"unfunny": 5, "somewhat funny": 3, "funny": 2}, "target_id": "17"},
        {"rating_counts": {"unfunny": 1, "somewhat funny": 2, "funny": 7}},
        {"rating_counts": {"unfunny": 9, "somewhat funny": 1, "funny": 0}},
        {"rating_summary": {"mean": 2.2, "precision": 0.1, "votes": 40}},
        {},
    ]
    texts = ["Branch manager, at last.", "I said WORK from home!", "Meh.", "A summary of a caption", "Brand new"]
    Response.objects.bulk_create(
        [
            Response(item=item, position=k, text=text, meta=meta)
            for k, (text, meta) in enumerate(zip(texts, metas, strict=True))
        ]
    )
    # Two raters rate every caption through the queue: levels by caption position.
    given = {0: [2, 2], 1: [0, 1], 2: [0, 0], 3: [1, 2], 4: [2, 1]}
    position = dict(Response.objects.filter(project=project).values_list("pk", "position"))
    for r, rater in enumerate([annotator, make_user("second-rater")]):
        services.project_member_add(project=project, user=rater)
        while (assignment := services.assignment_next(project=project, annotator=rater)) is not None:
            services.rating_submit(
                assignment_id=assignment.pk,
                annotator=rater,
                level=given[position[assignment.response_id]][r],
                client_request_id=uuid.uuid4().hex,
            )
    return project, {position[pk]: pk for pk in position}


def _expected(counts: dict, summary: dict | None = None) -> RatingAggregate:
    return RatingAggregate(
        item_key="cartoon-1",
        prompt="",
        image=None,
        text="",
        counts={HUMOR_SCALE[k]: n for k, n in enumerate(counts) if n},
        given_mean=summary and summary["mean"],
        given_precision=summary and summary["precision"],
        given_votes=summary["votes"] if summary else 0,
    )


@pytest.mark.django_db
def test_table_counts_imported_and_live_votes_with_mean_precision_and_rank(contest, researcher, api_client_for):
    project, ids = contest
    body = api_client_for(researcher).get("/api/v1/projects/contest/captions/").json()
    assert body["total"] == 5 and body["levels"] == LEVELS
    rows = {row["response_id"]: row for row in body["rows"]}
    # Caption 0: imported 5/3/2 plus two "funny" ratings.
    first = rows[ids[0]]
    assert first["counts"] == {"unfunny": 5, "somewhat funny": 3, "funny": 4} and first["votes"] == 12
    expected = _expected([5, 3, 4])
    assert first["mean"] == pytest.approx(expected.mean)
    assert first["precision"] == pytest.approx(expected.precision)
    assert first["ci_low"] == pytest.approx(expected.mean - 1.96 * expected.precision, abs=1e-3)
    # The summary caption: 40 votes given as mean and precision, plus ratings 1 and 2 (scores 2 and 3).
    summary = rows[ids[3]]
    pooled = _expected([0, 1, 1], {"mean": 2.2, "precision": 0.1, "votes": 40})
    assert summary["votes"] == 42 and summary["summary_votes"] == 40
    assert summary["mean"] == pytest.approx(pooled.mean) and summary["precision"] == pytest.approx(pooled.precision)
    # Ranks follow the means, best first, and the default order is by rank.
    by_mean = sorted(rows.values(), key=lambda row: -row["mean"])
    assert [row["rank"] for row in by_mean] == [1, 2, 3, 4, 5]
    assert [row["rank"] for row in body["rows"]] == [1, 2, 3, 4, 5]
    # "Brand new" has two ratings, funny and somewhat (2.5); the imported 1/3/7 plus two is next (2.38).
    assert [row["response_id"] for row in body["rows"][:2]] == [ids[4], ids[1]]


@pytest.mark.django_db
def test_table_sorts_searches_and_pages_on_the_server(contest, researcher, api_client_for):
    project, ids = contest
    client = api_client_for(researcher)
    url = "/api/v1/projects/contest/captions/"
    by_votes = client.get(url, {"sort": "-votes"}).json()["rows"]
    assert [row["votes"] for row in by_votes] == sorted((row["votes"] for row in by_votes), reverse=True)
    assert by_votes[0]["response_id"] == ids[3]
    worst_first = client.get(url, {"sort": "-rank"}).json()["rows"]
    assert [row["rank"] for row in worst_first] == [5, 4, 3, 2, 1]
    found = client.get(url, {"q": "bRaN"}).json()
    assert found["total"] == 2
    assert {row["caption"] for row in found["rows"]} == {"Branch manager, at last.", "Brand new"}
    page = client.get(url, {"offset": 2, "limit": 2}).json()
    assert page["total"] == 5 and [row["rank"] for row in page["rows"]] == [3, 4]
    alphabetical = client.get(url, {"sort": "caption"}).json()["rows"]
    assert [row["caption"] for row in alphabetical] == sorted(
        (row["caption"] for row in alphabetical), key=str.casefold
    )


@pytest.mark.django_db
def test_bad_table_queries_are_a_400_naming_the_field(contest, researcher, api_client_for):
    client = api_client_for(researcher)
    for params, field in (({"sort": "funniest"}, "sort"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset")):
        response = client.get("/api/v1/projects/contest/captions/", params)
        assert response.status_code == 400
        assert field in response.json()["extra"]["fields"]


@pytest.mark.django_db
def test_only_managers_see_the_table(contest, annotator, outsider, api_client_for):
    assert api_client_for(annotator).get("/api/v1/projects/contest/captions/").status_code in (403, 404)
    assert api_client_for(outsider).get("/api/v1/projects/contest/captions/").status_code == 404
    assert api_client_for(outsider).get("/api/v1/projects/contest/captions/export/").status_code == 404


@pytest.mark.django_db
def test_export_is_a_caption_contest_table_that_reads_back(contest, researcher, api_client_for, tmp_path):
    project, ids = contest
    response = api_client_for(researcher).get("/api/v1/projects/contest/captions/export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "contest-cartoon-1.csv" in response["Content-Disposition"]
    text = response.content.decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4", "5"]
    first = next(row for row in rows if row["caption"] == "Branch manager, at last.")
    assert (first["unfunny"], first["somewhat_funny"], first["funny"], first["count"]) == ("5", "3", "4", "12")
    assert first["target_id"] == "17" and first["contest"] == "cartoon-1"
    assert float(first["score"]) == pytest.approx(_expected([5, 3, 4]).mean)
    # The summary caption: its counted ratings in the level cells, its count and score pooled with the summary
    # (as the snapshot export writes such a caption).
    summary = next(row for row in rows if row["caption"] == "A summary of a caption")
    pooled = _expected([0, 1, 1], {"mean": 2.2, "precision": 0.1, "votes": 40})
    assert (summary["unfunny"], summary["somewhat_funny"], summary["funny"], summary["count"]) == ("0", "1", "1", "42")
    assert float(summary["score"]) == pytest.approx(pooled.mean)
    path = tmp_path / "contest.csv"
    path.write_text(text)
    (record,) = read_caption_contest_csv(path)
    assert len(record.responses) == 5
    read = {r.text: r for r in record.responses}
    assert read["Brand new"].rating_counts == {"unfunny": 0, "somewhat_funny": 1, "funny": 1}


@pytest.mark.django_db
def test_export_needs_the_item_when_there_are_several_and_a_three_level_scale(contest, researcher, api_client_for):
    project, _ = contest
    Item.objects.create(project=project, external_id="cartoon-2", prompt="Another")
    client = api_client_for(researcher)
    response = client.get("/api/v1/projects/contest/captions/export/")
    assert response.status_code == 400 and response.json()["extra"]["field"] == "item"
    assert client.get("/api/v1/projects/contest/captions/export/", {"item": "cartoon-1"}).status_code == 200
    missing = client.get("/api/v1/projects/contest/captions/export/", {"item": "nope"})
    assert missing.status_code == 400 and missing.json()["extra"]["field"] == "item"
    five = services.project_create(slug="five", kind="rating", created_by=researcher, rating_levels=list("abcde"))
    Item.objects.create(project=five, external_id="x", prompt="")
    refused = client.get("/api/v1/projects/five/captions/export/")
    assert refused.status_code == 400 and "three levels" in refused.json()["message"]
    pairwise = services.project_create(slug="pairs", kind="pairwise", created_by=researcher)
    assert client.get(f"/api/v1/projects/{pairwise.slug}/captions/").status_code == 400


@pytest.mark.django_db
def test_dashboard_of_a_rating_project_has_the_caption_card(contest, researcher, client):
    client.force_login(researcher)
    page = client.get("/projects/contest/dashboard/").content.decode()
    assert 'id="captions"' in page and "loupe/captions.js" in page
    assert "/api/v1/projects/contest/captions/export/?item=cartoon-1" in page
    assert 'name="rating_sampling"' in page
