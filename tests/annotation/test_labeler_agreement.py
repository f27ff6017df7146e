"""The AI labeler as an annotator on the dashboard: its agreement with people next to people's agreement
with each other, pairwise percent agreement over rater pairs both ways, for every kind of project."""

from annotation import services
from annotation.selectors_labeler import labeler_agreement
from tests.annotation.feedback import correct, judge, people, project_with_items, rank, rate, responses_of


def _ai(response, model, p_yes):
    claims = [f"claim {k}" for k in range(len(p_yes))]
    services.ai_feedback_record(response=response, labeler_model=model, claims=claims, p_yes=p_yes)


def test_pairwise_agreement_counts_rater_pairs_the_same_way_for_people_and_labelers(researcher, api_client_for, client):
    """i1: two people prefer r1, one r2 (1 of 3 people pairs agree); i2: two prefer r4, one says tie (1 of 1).
    Labeler L prefers r1 on i1 and scores i2 level (2 of 3); labeler M prefers r2 and r4 (1 of 3 + 2 of 2).
    The dashboard shows the same figures."""
    project = project_with_items("agree", "pairwise", {"i1": ["r1", "r2"], "i2": ["r3", "r4"]}, created_by=researcher)
    r1, r2 = responses_of(project, "i1")
    r3, r4 = responses_of(project, "i2")
    u0, u1, u2 = people("rater", 3)
    judge(r1, r2, u0, "a"), judge(r2, r1, u1, "b"), judge(r1, r2, u2, "b")
    judge(r3, r4, u0, "b"), judge(r4, r3, u1, "a"), judge(r3, r4, u2, "tie")
    _ai(r1, "L", [0.9]), _ai(r2, "L", [0.1]), _ai(r3, "L", [0.9]), _ai(r4, "L", [0.9])
    _ai(r1, "M", [0.1]), _ai(r2, "M", [0.9]), _ai(r3, "M", [0.1]), _ai(r4, "M", [0.9])

    found = labeler_agreement(project=project)
    assert (found["people"].agree, found["people"].n) == (2, 4)
    by_model = {row.labeler_model: (row.with_people.agree, row.with_people.n) for row in found["labelers"]}
    assert by_model == {"L": (2, 3), "M": (3, 5)}

    client.force_login(researcher)
    page = client.get(f"/projects/{project.slug}/dashboard/").content.decode()
    assert 'people with each other</td><td class="num">50%</td><td class="num">4</td>' in page
    assert 'AI labeler L with people</td><td class="num">67%</td><td class="num">3</td>' in page
    assert 'AI labeler M with people</td><td class="num">60%</td><td class="num">5</td>' in page


def test_correction_agreement_is_about_whether_an_answer_has_a_hallucination(researcher):
    """Two people mark a segment and one marks none (1 of 3 people pairs agree); the labeler doubts one of two
    claims, agreeing with the first two (2 of 3)."""
    project = project_with_items("agree-c", "correction", {"c1": ["A red cube."]}, created_by=researcher)
    (response,) = responses_of(project, "c1")
    u0, u1, u2 = people("fixer", 3)
    for person in (u0, u1):
        correct(response, person, [{"start": 2, "end": 5, "type": "attribute", "replacement": "blue"}], "A blue cube.")
    correct(response, u2, [], "A red cube.")
    _ai(response, "L", [0.3, 0.9])
    found = labeler_agreement(project=project)
    assert (found["people"].agree, found["people"].n) == (1, 3)
    assert [(r.labeler_model, r.with_people.agree, r.with_people.n) for r in found["labelers"]] == [("L", 2, 3)]


def test_rating_agreement_is_on_which_of_two_answers_is_rated_higher(researcher, api_client_for, client):
    """Levels (0 worst): u0 rates r1 2, r2 0, r3 1; u1 r1 2, r2 1, r3 1; u2 r1 0, r2 2. On {r1,r2} u0 and u1
    say r1, u2 r2 (1 of 3 people pairs agree); on {r1,r3} both say r1 (1 of 1); on {r2,r3} u1's equal levels
    give no verdict, so u0 is alone (no pair). People: 2 of 4.
    Labeler L scores r1 > r3 > r2: with people it agrees 2 of 3 on {r1,r2}, 2 of 2 on {r1,r3}, 1 of 1 on
    {r2,r3}: 5 of 6. Labeler M scores all three alike: no verdict, no pair. The stats API and the dashboard
    give the same figures."""
    project = project_with_items("agree-rate", "rating", {"i1": ["r1", "r2", "r3"]}, created_by=researcher)
    r1, r2, r3 = responses_of(project, "i1")
    u0, u1, u2 = people("rater", 3)
    for person, levels in ((u0, (2, 0, 1)), (u1, (2, 1, 1))):
        for response, level in zip((r1, r2, r3), levels, strict=True):
            rate(response, person, level)
    rate(r1, u2, 0), rate(r2, u2, 2)
    _ai(r1, "L", [0.9]), _ai(r2, "L", [0.1, 0.1]), _ai(r3, "L", [0.1])
    for response in (r1, r2, r3):
        _ai(response, "M", [0.9])

    found = labeler_agreement(project=project)
    assert (found["people"].agree, found["people"].n) == (2, 4)
    by_model = {row.labeler_model: (row.with_people.agree, row.with_people.n) for row in found["labelers"]}
    assert by_model == {"L": (5, 6), "M": (0, 0)}

    stats = api_client_for(researcher).get(f"/api/v1/projects/{project.slug}/stats/")
    assert stats.status_code == 200
    figures = stats.json()["labeler_agreement"]
    assert figures["people"] == {"agree": 2, "n": 4, "rate": 0.5}
    assert figures["labelers"][0] == {"labeler_model": "L", "with_people": {"agree": 5, "n": 6, "rate": 5 / 6}}
    assert "rated higher" in figures["statistic"]
    client.force_login(researcher)
    page = client.get(f"/projects/{project.slug}/dashboard/").content.decode()
    assert 'people with each other</td><td class="num">50%</td><td class="num">4</td>' in page
    assert 'AI labeler L with people</td><td class="num">83%</td><td class="num">6</td>' in page


def test_ranking_agreement_is_on_which_of_two_answers_is_ranked_higher(researcher, api_client_for, annotator):
    """u0 ranks r1 > r2 > r3, u1 r2 > r1 > r3: they agree on {r1,r3} and {r2,r3}, not on {r1,r2} (2 of 3).
    The labeler orders by score r1 > r2 > r3: 3 of 3 with u0, 2 of 3 with u1 (5 of 6). Only managers see
    the figures through the API."""
    project = project_with_items("agree-rank", "ranking", {"i1": ["r1", "r2", "r3"]}, created_by=researcher)
    r1, r2, r3 = responses_of(project, "i1")
    u0, u1 = people("ranker", 2)
    rank([r1, r2, r3], u0), rank([r2, r1, r3], u1)
    _ai(r1, "L", [0.9]), _ai(r2, "L", [0.1]), _ai(r3, "L", [0.1, 0.2])

    found = labeler_agreement(project=project)
    assert (found["people"].agree, found["people"].n) == (2, 3)
    assert [(r.labeler_model, r.with_people.agree, r.with_people.n) for r in found["labelers"]] == [("L", 5, 6)]
    figures = api_client_for(researcher).get(f"/api/v1/projects/{project.slug}/stats/").json()["labeler_agreement"]
    assert figures["labelers"][0]["with_people"] == {"agree": 5, "n": 6, "rate": 5 / 6}
    services.project_member_add(project=project, user=annotator)
    assert api_client_for(annotator).get(f"/api/v1/projects/{project.slug}/stats/").status_code in (403, 404)
