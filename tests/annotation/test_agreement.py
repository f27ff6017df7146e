"""The project agreement report (people with each other, each annotator against the other people, the AI
labeler listed as an annotator), through the selector, `manage.py agreement`, the API and the dashboard,
against figures worked by hand and the `krippendorff` package."""

import io
import json

import krippendorff
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotation import services
from annotation.models import Role
from annotation.selectors_agreement import agreement_report
from tests.annotation.feedback import correct, judge, people, project_with_items, rank, rate, responses_of

User = get_user_model()


def _ai(response, model, p_yes, spans=()):
    claims = [f"claim {k}" for k in range(len(p_yes))]
    services.ai_feedback_record(
        response=response, labeler_model=model, claims=claims, p_yes=p_yes, claim_spans=list(spans)
    )


def _row(report, annotator):
    return next(row for row in report["annotators"] if row["annotator"] == annotator)


@pytest.fixture
def pairwise_project(researcher):
    """Three pairs judged by u0, u1, u2 (the first answer of a pair has the lower id):
    i1: u0 first, u1 first, u2 second; i2: u0 second, u1 second, u2 tie (no preference); i3: u0 first,
    u1 second. Labeler L prefers the first answer on i1 and i3 and scores i2's answers alike (no preference)."""
    project = project_with_items(
        "agree-report", "pairwise", {"i1": ["r1", "r2"], "i2": ["r3", "r4"], "i3": ["r5", "r6"]}, created_by=researcher
    )
    r1, r2 = responses_of(project, "i1")
    r3, r4 = responses_of(project, "i2")
    r5, r6 = responses_of(project, "i3")
    u0, u1, u2 = people("judge", 3)
    judge(r1, r2, u0, "a"), judge(r2, r1, u1, "b"), judge(r1, r2, u2, "b")
    judge(r3, r4, u0, "b"), judge(r4, r3, u1, "a"), judge(r3, r4, u2, "tie")
    judge(r5, r6, u0, "a"), judge(r6, r5, u1, "a")
    _ai(r1, "L", [0.9]), _ai(r2, "L", [0.1]), _ai(r3, "L", [0.9]), _ai(r4, "L", [0.9])
    _ai(r5, "L", [0.9]), _ai(r6, "L", [0.1])
    return project


def test_pairwise_report_matches_figures_worked_by_hand(pairwise_project):
    """People: 2 of 7 rater pairs agree. Coincidences o_ff 1, o_fs = o_sf 2, o_ss 1, o_sn = o_ns 1, so
    n_f 3, n_s 4, n_none 1, n 8 and alpha = 1 - 7 * 6 / (2 * (12 + 3 + 4)) = -2/19. Fleiss' kappa over the two
    three-rater pairs: P̄ = 1/3, P̄_e = 14/36, kappa = -1/11.
    u0 against the others: 2 of 5 pairs; u0 says f 3, s 2, the others f 1, s 3, none 1: p_e = 9/25, Cohen's
    kappa = (10/25 - 9/25) / (16/25) = 1/16.
    L against people: 4 of 8 pairs; L says f 5, none 3, people f 3, s 4, none 1: p_e = 18/64, kappa = 7/23;
    its eight pairs as units: o_ff 6, o_fs = o_sf 2, o_ns = o_sn 2, o_nn 2, n 16: alpha = 1 - 15 * 8 / 160 = 1/4,
    which is also `krippendorff.alpha` on L's row against the people's row."""
    report = agreement_report(project=pairwise_project)
    assert list(report["measures"]) == ["preference"]
    among = report["people"]["preference"]
    assert (among["units"], among["pairs"], among["percent_agreement"]) == (3, 7, pytest.approx(2 / 7))
    assert among["alpha"] == pytest.approx(-2 / 19)
    assert among["fleiss_kappa"] == {"kappa": pytest.approx(-1 / 11), "units": 2, "raters_per_unit": 3}

    assert [row["annotator"] for row in report["annotators"]] == ["judge0", "judge1", "judge2", "AI labeler L"]
    u0 = _row(report, "judge0")["measures"]["preference"]
    assert (u0["units"], u0["pairs"], u0["percent_agreement"]) == (3, 5, pytest.approx(2 / 5))
    assert u0["cohen_kappa"] == pytest.approx(1 / 16)

    labeler = _row(report, "AI labeler L")
    assert labeler["labeler_model"] == "L"
    figures = labeler["measures"]["preference"]
    assert (figures["units"], figures["pairs"], figures["percent_agreement"]) == (3, 8, 0.5)
    assert figures["cohen_kappa"] == pytest.approx(7 / 23)
    assert figures["alpha"] == pytest.approx(0.25)
    codes = {"f": 0, "s": 1, "n": 2}
    labeler_row = [codes[v] for v in "fffnnnff"]
    people_row = [codes[v] for v in "ffsssnfs"]
    reference = krippendorff.alpha(reliability_data=[labeler_row, people_row], level_of_measurement="nominal")
    assert figures["alpha"] == pytest.approx(reference)


def test_correction_report_has_hallucination_agreement_and_span_f1_with_the_labeler(researcher):
    """Answer 1 "A red cube left of two balls.": u0 marks "red" (attribute) and "two" (count), u1 "red cube"
    (attribute), u2 nothing. u0-u1: precision 1/2, recall 1, F1 2/3 (types agree, type F1 2/3); characters 6
    and 8 sharing 3: 3/7. Pairs with u2 score 0, so people's mean segment F1 is 2/9, character F1 1/7.
    Answer 2: nobody marks anything (3 pairs both unmarked). Hallucination: T T F and F F F, alpha 0.375 (the
    package's on the same matrix). The labeler doubts the claim at [0, 10) of answer 1 and nothing in answer 2:
    with u0 F1 2/3, u1 1, u2 0 (mean 5/9), no type F1 (its segments have no type); hallucination 5 of 6.
    Labeler M doubts a claim of answer 1 it could not place: no span figures, but it found a hallucination."""
    text = "A red cube left of two balls."
    project = project_with_items(
        "agree-spans", "correction", {"c1": [text], "c2": ["A green ball."]}, created_by=researcher
    )
    (first,) = responses_of(project, "c1")
    (second,) = responses_of(project, "c2")
    u0, u1, u2 = people("fixer", 3)

    def segment(start, end, kind):
        return {"start": start, "end": end, "type": kind, "replacement": "x", "original": text[start:end]}

    correct(first, u0, [segment(2, 5, "attribute"), segment(19, 22, "count")], "A x cube left of x balls.")
    correct(first, u1, [segment(2, 10, "attribute")], "A x left of two balls.")
    correct(first, u2, [], text)
    for person in (u0, u1, u2):
        correct(second, person, [], "A green ball.")
    _ai(first, "L", [0.2, 0.9], spans=[[0, 10], [19, 29]])
    _ai(second, "L", [0.9], spans=[[0, 13]])
    _ai(first, "M", [0.2], spans=[None])  # doubts a claim it cannot place in the answer

    report = agreement_report(project=project)
    assert list(report["measures"]) == ["hallucination", "spans"]
    spans = report["people"]["spans"]
    assert (spans["pairs"], spans["both_unmarked"]) == (3, 3)
    assert spans["segment_f1"] == pytest.approx(2 / 9)
    assert spans["type_f1"] == pytest.approx(2 / 9)
    assert spans["character_f1"] == pytest.approx(1 / 7)
    hallucination = report["people"]["hallucination"]
    assert hallucination["alpha"] == pytest.approx(0.375)
    matrix = [[1, 0], [1, 0], [0, 0]]
    assert hallucination["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    )

    labeler = _row(report, "AI labeler L")["measures"]
    assert labeler["spans"]["segment_f1"] == pytest.approx(5 / 9)
    assert labeler["spans"]["type_f1"] is None
    assert labeler["hallucination"]["percent_agreement"] == pytest.approx(5 / 6)
    unplaced = _row(report, "AI labeler M")["measures"]
    assert (unplaced["spans"]["units"], unplaced["spans"]["segment_f1"]) == (0, None)  # not "marked nothing"
    assert unplaced["hallucination"]["percent_agreement"] == pytest.approx(2 / 3)


def test_rating_report_gives_ordinal_alpha_of_levels_and_the_labeler_only_on_order(researcher):
    """Levels u0 (2, 0, 1), u1 (2, 1, 1), u2 (0, 2, -): the level alpha is `krippendorff.alpha` of that matrix,
    ordinal and interval; the labeler has no level figure (its score is on no scale of the project's) but
    takes part in the order measure."""
    project = project_with_items("agree-levels", "rating", {"i1": ["r1", "r2", "r3"]}, created_by=researcher)
    r1, r2, r3 = responses_of(project, "i1")
    u0, u1, u2 = people("rater", 3)
    for person, levels in ((u0, (2, 0, 1)), (u1, (2, 1, 1))):
        for response, level in zip((r1, r2, r3), levels, strict=True):
            rate(response, person, level)
    rate(r1, u2, 0), rate(r2, u2, 2)
    _ai(r1, "L", [0.9]), _ai(r2, "L", [0.1, 0.1]), _ai(r3, "L", [0.1])

    report = agreement_report(project=project)
    matrix = [[2, 0, 1], [2, 1, 1], [0, 2, np.nan]]
    level = report["people"]["level"]
    for key, measurement in (("alpha", "ordinal"), ("alpha_interval", "interval")):
        reference = krippendorff.alpha(
            reliability_data=matrix, value_domain=[0, 1, 2], level_of_measurement=measurement
        )
        assert level[key] == pytest.approx(reference)
    labeler = _row(report, "AI labeler L")["measures"]
    assert labeler["level"] is None
    # As the dashboard's percent agreement has it (test_labeler_agreement): 5 of 6 pairs on which is higher.
    assert (labeler["order"]["pairs"], labeler["order"]["percent_agreement"]) == (6, pytest.approx(5 / 6))


def test_ranking_report_gives_rank_correlation_both_ways(researcher):
    """u0 ranks r1 > r2 > r3, u1 r2 > r1 > r3: tau = 1/3, rho = 1/2. The labeler scores r1 > r2 > r3: tau 1 with
    u0 and 1/3 with u1, mean 2/3."""
    project = project_with_items("agree-ranks", "ranking", {"i1": ["r1", "r2", "r3"]}, created_by=researcher)
    r1, r2, r3 = responses_of(project, "i1")
    u0, u1 = people("ranker", 2)
    rank([r1, r2, r3], u0), rank([r2, r1, r3], u1)
    _ai(r1, "L", [0.9]), _ai(r2, "L", [0.1]), _ai(r3, "L", [0.1, 0.2])
    report = agreement_report(project=project)
    assert report["people"]["rank"]["kendall_tau"] == pytest.approx(1 / 3)
    assert report["people"]["rank"]["spearman_rho"] == pytest.approx(0.5)
    assert _row(report, "AI labeler L")["measures"]["rank"]["kendall_tau"] == pytest.approx(2 / 3)
    assert _row(report, "ranker0")["measures"]["rank"]["kendall_tau"] == pytest.approx(1 / 3)


def test_api_gives_the_report_to_managers_and_reviewers_only(pairwise_project, researcher, make_user, api_client_for):
    """The manager and a reviewer get the report (as the command prints it); an annotator of the project and
    an outsider get the 404 of a project that does not exist; without a login, 401/403."""
    url = f"/api/v1/projects/{pairwise_project.slug}/agreement/"
    reviewer, member, outsider = make_user("rev"), make_user("member"), make_user("stranger")
    services.project_member_add(project=pairwise_project, user=reviewer, role=Role.REVIEWER)
    services.project_member_add(project=pairwise_project, user=member, role=Role.ANNOTATOR)

    answer = api_client_for(researcher).get(url)
    assert answer.status_code == 200
    out = io.StringIO()
    call_command("agreement", "--project", pairwise_project.slug, stdout=out)
    assert answer.json() == json.loads(out.getvalue())
    assert answer.json()["annotators"][-1]["measures"]["preference"]["alpha"] == pytest.approx(0.25)
    assert api_client_for(reviewer).get(url).status_code == 200
    # A new judgment shows at once (the cached report is keyed by the project's annotations): u2 comes to
    # share i3 and agrees with u0 there, so 3 of 9 people pairs agree.
    r5, r6 = responses_of(pairwise_project, "i3")
    judge(r5, r6, User.objects.get(username="judge2"), "a")
    again = api_client_for(researcher).get(url).json()["people"]["preference"]
    assert (again["pairs"], again["percent_agreement"]) == (9, pytest.approx(3 / 9))
    assert api_client_for(member).get(url).status_code == 404
    assert api_client_for(outsider).get(url).status_code == 404
    assert api_client_for(None).get(url).status_code in (401, 403)
    assert api_client_for(researcher).get("/api/v1/projects/no-such/agreement/").status_code == 404


def test_command_names_the_missing_project(db):
    """An unknown slug is a CommandError naming --project, not a traceback."""
    with pytest.raises(CommandError, match="--project: no project 'nope'"):
        call_command("agreement", "--project", "nope", stdout=io.StringIO())


def test_dashboard_shows_a_row_per_annotator_with_the_labeler_and_plots_them(pairwise_project, researcher, client):
    """The dashboard's agreement card: people, each person and the labeler as rows with alpha and kappa, and a
    bar per annotator (the labeler's drawn in its own colour) with the people's alpha as a line."""
    client.force_login(researcher)
    page = client.get(f"/projects/{pairwise_project.slug}/dashboard/").content.decode()
    assert 'id="agreement-table"' in page
    assert '<tr data-who="people"><td>people with each other</td><td class="num">-0.11</td>' in page
    assert (
        '<td>AI labeler L <span class="badge">AI</span></td><td class="num">0.25</td><td class="num">0.30</td>' in page
    )
    assert '<td>judge0</td><td class="num">' in page
    assert page.count('class="agreement-bar"') == 4
    assert page.count('data-labeler="true"') == 1
    assert 'id="agreement-people"' in page


@pytest.mark.parametrize("kind", ["pairwise", "correction", "rating", "ranking"])
def test_dashboard_card_renders_for_every_kind_before_anyone_answered(kind, researcher, client):
    """A new project of any kind shows the card with its measures' columns and dashes, and no plot yet."""
    project = project_with_items(f"agree-new-{kind}", kind, {"i1": ["one", "two", "three"]}, created_by=researcher)
    client.force_login(researcher)
    answer = client.get(f"/projects/{project.slug}/dashboard/")
    assert answer.status_code == 200
    page = answer.content.decode()
    assert 'id="agreement-table"' in page and 'id="agreement-plot"' not in page
    titles = {"pairwise": "α", "correction": "segment F1", "rating": "α ordinal", "ranking": "τ"}
    assert f'<th class="num">{titles[kind]}</th>' in page
    assert '<tr data-who="people"><td>people with each other</td><td class="num">–</td>' in page
