"""The agreement statistics (`annotation.agreement`) against cases worked by hand, published examples and the
`krippendorff` package on the same data."""

import math

import krippendorff
import numpy as np
import pytest

from annotation import agreement as stats

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units example with
# missing values; the paper gives alpha 0.743 nominal, 0.815 ordinal, 0.849 interval.
NAN = np.nan
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def _table(matrix, *, raters=None):
    """Rows of raters x columns of units (nan: not rated) as the module's unit → {rater: value} table."""
    raters = raters or [f"r{k}" for k in range(len(matrix))]
    table = {}
    for unit in range(len(matrix[0])):
        table[unit] = {raters[k]: int(row[unit]) for k, row in enumerate(matrix) if not math.isnan(row[unit])}
    return table


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_is_the_krippendorff_package_on_the_same_matrix_and_the_published_figure(level, published):
    """Alpha from the unit → rater table equals `krippendorff.alpha` on the raters x units matrix, and the
    paper's value, at every level of measurement."""
    table = _table(KRIPPENDORFF_2011)
    found = stats.alpha(table, raters={"r0", "r1", "r2", "r3"}, level=level, domain=[1, 2, 3, 4, 5])
    reference = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011, level_of_measurement=level)
    assert found == pytest.approx(reference, abs=1e-12)
    assert round(found, 3) == published


def test_nominal_alpha_of_a_tiny_case_worked_by_hand():
    """Two raters, four units: (a, a), (a, b), (b, b), (b, b). The coincidence matrix has o_ab = o_ba = 1,
    n_a = 3, n_b = 5, n = 8, so alpha = 1 - (n - 1) * (o_ab + o_ba) / (2 n_a n_b) = 1 - 7 * 2 / 30 = 8/15.
    Categories that are strings or booleans work alike (only their distinctness counts)."""
    table = {1: {"x": "a", "y": "a"}, 2: {"x": "a", "y": "b"}, 3: {"x": "b", "y": "b"}, 4: {"x": "b", "y": "b"}}
    assert stats.alpha(table, raters={"x", "y"}, level="nominal", domain=["a", "b"]) == pytest.approx(8 / 15)
    flags = {unit: {who: value == "b" for who, value in by.items()} for unit, by in table.items()}
    assert stats.alpha(flags, raters={"x", "y"}, level="nominal", domain=[False, True]) == pytest.approx(8 / 15)
    # Against the rest: one rater's value pairs with the other's are the same four two-value units.
    pairs = list(stats.value_pairs(table, raters={"x", "y"}, rater="x"))
    assert stats.alpha_of_pairs(pairs, level="nominal", domain=["a", "b"]) == pytest.approx(8 / 15)


def test_alpha_is_none_where_there_is_nothing_to_measure():
    """No unit with two values, or one value throughout (no expected disagreement): no figure, not 0 or 1."""
    assert stats.alpha({1: {"x": 1}, 2: {"y": 2}}, raters={"x", "y"}, level="nominal", domain=[1, 2]) is None
    same = {1: {"x": 1, "y": 1}, 2: {"x": 1, "y": 1}}
    assert stats.alpha(same, raters={"x", "y"}, level="nominal", domain=[1, 2]) is None


def test_cohen_kappa_of_a_two_by_two_table_by_hand():
    """50 answers: both yes 20, A yes B no 5, A no B yes 10, both no 15. p_o = 35/50 = 0.7; A says yes to
    25/50, B to 30/50, so p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5 and kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4."""
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert stats.cohen_kappa(pairs) == pytest.approx(0.4)
    assert stats.percent_agreement(pairs).rate == pytest.approx(0.7)
    assert stats.cohen_kappa([("yes", "yes")] * 3) is None  # p_e = 1: chance explains everything


def test_light_kappa_is_cohen_for_two_raters_and_the_mean_over_rater_pairs():
    """Raters x and y as in the 2x2 case (kappa 0.4); z agrees with x on every unit (kappa 1) and shares none
    with y. The mean over the two rater pairs that share units is 0.7."""
    table = {}
    labels = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    for unit, (x, y) in enumerate(labels):
        table[unit] = {"x": x, "y": y}
    assert stats.light_kappa(table, raters={"x", "y"}) == (pytest.approx(0.4), 1)
    for unit, (x, _y) in enumerate(labels):
        table[100 + unit] = {"x": x, "z": x}
    assert stats.light_kappa(table, raters={"x", "y", "z"}) == (pytest.approx(0.7), 2)


def test_fleiss_kappa_of_the_fleiss_1971_example_on_wikipedia():
    """Ten subjects, fourteen raters, five categories (Wikipedia's "Fleiss' kappa" worked example):
    P̄ = 0.378, P̄_e = 0.2128, kappa = 0.210."""
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    expected_observed, expected_chance = 0.378, 0.2128
    kappa = stats.fleiss_kappa_counts(counts)
    assert kappa == pytest.approx((expected_observed - expected_chance) / (1 - expected_chance), abs=1e-4)
    assert round(kappa, 3) == 0.210
    with pytest.raises(ValueError, match="same number"):
        stats.fleiss_kappa_counts([[1, 1], [2, 1]])


def test_fleiss_kappa_of_a_table_takes_the_units_with_the_usual_number_of_raters():
    """Three units rated by three people and one by two: the three-rater units make Fleiss' kappa. Unit 1
    (a, a, a), unit 2 (a, a, b), unit 3 (b, b, b): P_i = 1, 1/3, 1, P̄ = 7/9 = 63/81; p_a = 5/9, p_b = 4/9,
    P̄_e = 41/81; kappa = (63/81 - 41/81) / (40/81) = 22/40."""
    table = {
        1: {"x": "a", "y": "a", "z": "a"},
        2: {"x": "a", "y": "a", "z": "b"},
        3: {"x": "b", "y": "b", "z": "b"},
        4: {"x": "a", "y": "b"},
    }
    found = stats.fleiss_kappa(table, raters={"x", "y", "z"}, domain=["a", "b"])
    assert found == {"kappa": pytest.approx(22 / 40), "units": 3, "raters_per_unit": 3}


def test_span_f1_of_two_corrections_by_hand():
    """A marks [0,5) object and [10,15) count; B marks [3,8) object and [20,25) count. One of A's two segments
    overlaps one of B's and the reverse: precision = recall = 1/2, F1 = 1/2; the overlapping pair has the same
    type, so type F1 is 1/2 too, and 0 once B calls it an attribute. Characters: A 10, B 10, shared 2 (3, 4):
    character F1 = 2 * 2 / 20 = 0.2."""
    first = [(0, 5, "object"), (10, 15, "count")]
    second = [(3, 8, "object"), (20, 25, "count")]
    assert stats.segment_f1(first, second) == pytest.approx(0.5)
    assert stats.segment_f1(first, second, by_type=True) == pytest.approx(0.5)
    assert stats.segment_f1(first, [(3, 8, "attribute"), (20, 25, "count")], by_type=True) == 0.0
    assert stats.character_f1(first, second) == pytest.approx(0.2)
    # Touching is not overlapping ([0,5) and [5,8) share no character).
    assert stats.segment_f1([(0, 5, "object")], [(5, 8, "object")]) == 0.0
    # One side marks nothing: no agreement; neither does: nothing to measure.
    assert stats.segment_f1(first, []) == 0.0
    assert stats.segment_f1([], []) is None
    assert stats.character_f1([], []) is None


def test_span_figures_average_the_pairs_that_marked_something():
    """Answer 1: x and y as in the hand case (F1 0.5, character F1 0.2). Answer 2: x and y mark the same
    segment (1, 1). Answer 3: neither marks anything (left out, counted as both unmarked). A labeler side
    without types gets no type F1."""
    first = [(0, 5, "object"), (10, 15, "count")]
    second = [(3, 8, "object"), (20, 25, "count")]
    table = {1: {"x": first, "y": second}, 2: {"x": [(2, 4, "count")], "y": [(2, 4, "count")]}, 3: {"x": [], "y": []}}
    found = stats.span_figures(table, raters={"x", "y"})
    assert found["pairs"] == 2 and found["both_unmarked"] == 1 and found["units"] == 3
    assert found["segment_f1"] == pytest.approx(0.75)
    assert found["type_f1"] == pytest.approx(0.75)
    assert found["character_f1"] == pytest.approx(0.6)
    table[2]["ai"] = [(0, 6, None)]
    for_labeler = stats.span_figures(table, raters={"x", "y"}, rater="ai")
    assert for_labeler["segment_f1"] == 1.0 and for_labeler["type_f1"] is None and for_labeler["pairs"] == 2


def test_rank_correlation_by_hand_with_and_without_ties():
    """x = 1 2 3 4 against y = 1 3 2 4: 5 concordant and 1 discordant of 6 pairs, tau = 4/6; d = 0 1 1 0,
    rho = 1 - 6 * 2 / (4 * 15) = 0.8. With a tie, x = 1 2 3 against y = 1 1 2: C = 2, D = 0, one pair tied
    in y: tau-b = 2 / sqrt(3 * 2); rho is Pearson's r of ranks 1 2 3 and 1.5 1.5 3 = sqrt(3)/2."""
    assert stats.kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert stats.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert stats.kendall_tau_b([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / math.sqrt(6))
    assert stats.spearman_rho([1, 2, 3], [1, 1, 2]) == pytest.approx(math.sqrt(3) / 2)
    assert stats.kendall_tau_b([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert stats.kendall_tau_b([1, 2], [5, 5]) is None  # one side all ties: no correlation to speak of
    assert stats.spearman_rho([1], [1]) is None


def test_rank_figures_compare_orders_over_the_answers_both_ordered():
    """x ranks answers 10 > 11 > 12 (scores minus position), y 11 > 10 > 12: tau = 1/3, rho = 0.5; a labeler
    scoring 10 and 11 alike and 12 lower: tau-b with x = 2/sqrt(6)."""
    table = {"item": {"x": {10: 0, 11: -1, 12: -2}, "y": {11: 0, 10: -1, 12: -2}, "ai": {10: -1, 11: -1, 12: -3}}}
    people = stats.rank_figures(table, raters={"x", "y"})
    assert people["kendall_tau"] == pytest.approx(1 / 3) and people["spearman_rho"] == pytest.approx(0.5)
    assert people["pairs"] == 1
    labeler = stats.rank_figures(table, raters={"x", "y"}, rater="ai")
    assert labeler["kendall_tau"] == pytest.approx(2 / math.sqrt(6)) and labeler["pairs"] == 2


def test_categorical_figures_of_one_rater_against_the_others():
    """x shares unit 1 with y (agree) and z (disagree), unit 2 with y (agree): 2 of 3 pairs; Cohen's kappa of
    the pooled pairs (a,a), (a,b), (b,b): p_o = 2/3, x gives a 2/3 and b 1/3, the others a 1/3 and b 2/3,
    p_e = 4/9, kappa = (2/3 - 4/9) / (5/9) = 0.4."""
    table = {1: {"x": "a", "y": "a", "z": "b"}, 2: {"x": "b", "y": "b"}, 3: {"y": "a", "z": "a"}}
    found = stats.categorical_figures(table, raters={"x", "y", "z"}, rater="x", level="nominal", domain=["a", "b"])
    assert found["units"] == 2 and found["pairs"] == 3
    assert found["percent_agreement"] == pytest.approx(2 / 3)
    assert found["cohen_kappa"] == pytest.approx(0.4)
    among = stats.categorical_figures(table, raters={"x", "y", "z"}, level="nominal", domain=["a", "b"])
    assert among["units"] == 3 and among["pairs"] == 5 and among["percent_agreement"] == pytest.approx(3 / 5)
    assert among["fleiss_kappa"]["units"] == 2  # the two-rater units: two of three
