"""Agreement statistics between annotators, plain Python and numpy (no Django): the math behind the project
agreement report (`annotation.selectors_agreement`) and the AI labeler's agreement with people
(`annotation.selectors_labeler`).

The data is a *table*: unit → {rater: value}, one value per rater and unit (a rater is anything hashable: a
user id, or the AI labeler's key). Statistics are computed among a set of raters (people with each other), or
for one rater against the others (each annotator, or the labeler, against the people) on the units they share:
the pairs (that rater's value, another rater's value) of every shared unit.

- Percent agreement: the share of rater pairs of a unit that gave the same value.
- Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"), by the `krippendorff`
  package from per-unit value counts: nominal, ordinal or interval. For one rater against the others each
  (unit, other rater) pair is a unit of two values, so the expected disagreement comes from those pairs alone.
- Cohen's kappa (1960) for two raters' paired values; over more raters the mean of the pairwise Cohen's kappas
  (Light's kappa, 1971). Fleiss' kappa (1971) for a fixed number of raters per unit.
- Span agreement of two sets of marked segments `(start, end, type)` (half-open character offsets): overlap F1
  (a segment is found when the other side marked a segment overlapping it by at least one character; with
  types, one of the same type), and character F1 (the Dice coefficient of the marked characters).
- Rank correlation of two raters' orders over the answers both ordered: Kendall's tau-b and Spearman's rho
  (Pearson's r of average ranks), both correct with ties, which the AI labeler's equal scores make.

A statistic with nothing to compute on (no pair, no variation: expected disagreement 0) is None, never 0.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np

NOMINAL = "nominal"
ORDINAL = "ordinal"
INTERVAL = "interval"

Table = Mapping[Hashable, Mapping[Hashable, Any]]
Segment = tuple[int, int, str | None]


@dataclass(frozen=True)
class Agreement:
    """Percent agreement: `agree` of `n` rater pairs gave the same value."""

    agree: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.agree / self.n if self.n else None


# ------------------------------------------------------------------------------------------------ pairs


def value_pairs(table: Table, *, raters: Collection[Hashable], rater: Hashable | None = None) -> Iterator[tuple]:
    """The value pairs of two distinct raters on one unit: every pair among `raters` (when `rater` is None),
    or (`rater`'s value, the other's value) for every other one of `raters` on each unit `rater` judged."""
    for values in table.values():
        if rater is None:
            yield from combinations([value for who, value in values.items() if who in raters], 2)
        elif rater in values:
            mine = values[rater]
            for who, value in values.items():
                if who != rater and who in raters:
                    yield mine, value


def shared_units(table: Table, *, raters: Collection[Hashable], rater: Hashable | None = None) -> int:
    """Units judged by two of `raters` (or by `rater` and one of `raters`)."""
    if rater is None:
        return sum(1 for values in table.values() if sum(who in raters for who in values) >= 2)
    return sum(1 for values in table.values() if rater in values and any(w in raters and w != rater for w in values))


def percent_agreement(pairs: Sequence[tuple]) -> Agreement:
    return Agreement(agree=sum(first == second for first, second in pairs), n=len(pairs))


# ------------------------------------------------------------------------------------------------ kappa


def cohen_kappa(pairs: Sequence[tuple]) -> float | None:
    """Cohen's kappa of paired values (first rater, second rater): (p_o - p_e) / (1 - p_e), with p_e from the
    two raters' own category shares. None with no pairs, or when both raters always give one same value."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(first == second for first, second in pairs) / n
    firsts = Counter(first for first, _ in pairs)
    seconds = Counter(second for _, second in pairs)
    expected = sum(firsts[value] * seconds[value] for value in firsts) / (n * n)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1 - expected)


def light_kappa(table: Table, *, raters: Collection[Hashable]) -> tuple[float | None, int]:
    """The mean of Cohen's kappa over every pair of `raters` that share a unit (and whose kappa is defined),
    with the number of such rater pairs: Cohen's kappa itself when there are two raters."""
    paired: dict[tuple, list[tuple]] = defaultdict(list)
    for values in table.values():
        present = [(who, value) for who, value in values.items() if who in raters]
        for (first, value_first), (second, value_second) in combinations(present, 2):
            key, pair = ((first, second), (value_first, value_second))
            if (second, first) in paired:
                key, pair = (second, first), (value_second, value_first)
            paired[key].append(pair)
    kappas = [kappa for kappa in (cohen_kappa(pairs) for pairs in paired.values()) if kappa is not None]
    return (sum(kappas) / len(kappas) if kappas else None), len(kappas)


def fleiss_kappa_counts(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa from `counts[i][j]`, how many raters put unit i in category j (every unit rated by the
    same number n >= 2 of raters): (P̄ - P̄_e) / (1 - P̄_e), P_i = (Σ_j n_ij² - n) / (n(n - 1)),
    P̄_e = Σ_j p_j², p_j the share of all ratings in category j."""
    if not counts:
        return None
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        raise ValueError("Fleiss' kappa needs the same number (at least 2) of raters on every unit.")
    units = len(counts)
    shares = [sum(row[j] for row in counts) / (units * n) for j in range(len(counts[0]))]
    per_unit = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts]
    observed = sum(per_unit) / units
    expected = sum(share * share for share in shares)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1 - expected)


def fleiss_kappa(table: Table, *, raters: Collection[Hashable], domain: Sequence[Hashable]) -> dict[str, Any]:
    """Fleiss' kappa over the units rated by the most common number (>= 2) of `raters` (the larger number on
    a tie): `{"kappa", "units", "raters_per_unit"}`. Units with another number of raters are left out."""
    rows = [[value for who, value in values.items() if who in raters] for values in table.values()]
    sizes = Counter(len(row) for row in rows if len(row) >= 2)
    if not sizes:
        return {"kappa": None, "units": 0, "raters_per_unit": None}
    size = max(sizes, key=lambda k: (sizes[k], k))
    index = {value: j for j, value in enumerate(domain)}
    counts = []
    for row in rows:
        if len(row) == size:
            count = [0] * len(domain)
            for value in row:
                count[index[value]] += 1
            counts.append(count)
    return {"kappa": fleiss_kappa_counts(counts), "units": len(counts), "raters_per_unit": size}


# ------------------------------------------------------------------------------------------------ alpha


def _alpha_of_counts(
    units: Sequence[int], values: Sequence[int], *, level: str, domain: Sequence[Hashable]
) -> float | None:
    """`krippendorff.alpha` over per-unit value counts (the k-th value given is domain index `values[k]` in
    unit `units[k]`, units numbered from 0), None where it is undefined (no unit with two values, or a single
    value throughout: expected disagreement 0)."""
    if not units or len(domain) < 2:
        return None
    counts = np.zeros((max(units) + 1, len(domain)), dtype=np.int64)
    np.add.at(counts, (np.asarray(units), np.asarray(values)), 1)
    # Nominal distances only tell values apart, so any labels will do; the others need the numbers, in order.
    labels = list(range(len(domain))) if level == NOMINAL else [float(value) for value in domain]
    with np.errstate(divide="ignore", invalid="ignore"):
        found = krippendorff.alpha(value_counts=counts, value_domain=labels, level_of_measurement=level)
    return None if math.isnan(found) else float(found)


def alpha(table: Table, *, raters: Collection[Hashable], level: str, domain: Sequence[Hashable]) -> float | None:
    """Krippendorff's alpha among `raters` over the units two or more of them judged. `domain` lists every
    value a rater may give (in order, for ordinal and interval: the values themselves, numbers)."""
    index = {value: j for j, value in enumerate(domain)}
    units: list[int] = []
    values: list[int] = []
    pairable = 0
    for by in table.values():
        present = [index[value] for who, value in by.items() if who in raters]
        if len(present) >= 2:
            units.extend([pairable] * len(present))
            values.extend(present)
            pairable += 1
    return _alpha_of_counts(units, values, level=level, domain=domain)


def alpha_of_pairs(pairs: Sequence[tuple], *, level: str, domain: Sequence[Hashable]) -> float | None:
    """Krippendorff's alpha with every value pair a unit of its own: one rater against the others."""
    index = {value: j for j, value in enumerate(domain)}
    values = [index[value] for pair in pairs for value in pair]
    return _alpha_of_counts([k // 2 for k in range(len(values))], values, level=level, domain=domain)


def categorical_figures(
    table: Table, *, raters: Collection[Hashable], level: str, domain: Sequence[Hashable], rater: Hashable | None = None
) -> dict[str, Any]:
    """Agreement on values from `domain`: among `raters`, or `rater` against them. Percent agreement and
    Krippendorff's alpha at `level`; for nominal values also Cohen's kappa (among raters: Light's mean over
    rater pairs) and, among raters, Fleiss' kappa."""
    pairs = list(value_pairs(table, raters=raters, rater=rater))
    agreement = percent_agreement(pairs)
    figures: dict[str, Any] = {
        "units": shared_units(table, raters=raters, rater=rater),
        "pairs": agreement.n,
        "percent_agreement": agreement.rate,
    }
    if rater is None:
        figures["alpha"] = alpha(table, raters=raters, level=level, domain=domain)
    else:
        figures["alpha"] = alpha_of_pairs(pairs, level=level, domain=domain)
    if level == NOMINAL:
        if rater is None:
            figures["cohen_kappa"], figures["rater_pairs"] = light_kappa(table, raters=raters)
            figures["fleiss_kappa"] = fleiss_kappa(table, raters=raters, domain=domain)
        else:
            figures["cohen_kappa"] = cohen_kappa(pairs)
    return figures


# ------------------------------------------------------------------------------------------------ spans


def _overlaps(first: Segment, second: Segment) -> bool:
    return first[0] < second[1] and second[0] < first[1]


def segment_f1(first: Sequence[Segment], second: Sequence[Segment], *, by_type: bool = False) -> float | None:
    """Overlap F1 of two raters' segments: precision is the share of `first`'s segments that overlap one of
    `second`'s (of the same type, `by_type`), recall the share of `second`'s that overlap one of `first`'s.
    None when neither marked anything (they agree there is nothing to mark; span F1 has nothing to say)."""
    if not first and not second:
        return None
    if not first or not second:
        return 0.0

    def found(segment: Segment, others: Sequence[Segment]) -> bool:
        return any(_overlaps(segment, other) and (not by_type or segment[2] == other[2]) for other in others)

    precision = sum(found(segment, second) for segment in first) / len(first)
    recall = sum(found(segment, first) for segment in second) / len(second)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def character_f1(first: Sequence[Segment], second: Sequence[Segment]) -> float | None:
    """F1 of the marked characters (2|A ∩ B| / (|A| + |B|)); None when neither marked anything."""
    marked_first = {k for start, end, _ in first for k in range(start, end)}
    marked_second = {k for start, end, _ in second for k in range(start, end)}
    if not marked_first and not marked_second:
        return None
    return 2 * len(marked_first & marked_second) / (len(marked_first) + len(marked_second))


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def span_figures(table: Table, *, raters: Collection[Hashable], rater: Hashable | None = None) -> dict[str, Any]:
    """Span agreement over rater pairs of one answer (values: lists of segments; a segment type of None is
    unknown, and a pair with one such side has no type F1): means over the pairs where either marked
    something (`pairs`); `both_unmarked` counts the pairs where neither did."""
    pairs = list(value_pairs(table, raters=raters, rater=rater))
    marked = [(first, second) for first, second in pairs if first or second]
    typed = [
        (first, second) for first, second in marked if all(segment[2] is not None for segment in (*first, *second))
    ]
    return {
        "units": shared_units(table, raters=raters, rater=rater),
        "pairs": len(marked),
        "both_unmarked": len(pairs) - len(marked),
        "segment_f1": _mean([segment_f1(first, second) for first, second in marked]),
        "type_f1": _mean([segment_f1(first, second, by_type=True) for first, second in typed]),
        "type_pairs": len(typed),
        "character_f1": _mean([character_f1(first, second) for first, second in marked]),
    }


# ------------------------------------------------------------------------------------------------ ranks


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda k: values[k])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in order[start : end + 1]:
            ranks[k] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def kendall_tau_b(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Kendall's tau-b of paired scores: (C - D) / √((n0 - t1)(n0 - t2)), n0 the pairs of positions, t1 and t2
    those tied in `first` and in `second`. None under two positions or when one side is all ties."""
    concordant = discordant = tied_first = tied_second = total = 0
    for i, j in combinations(range(len(first)), 2):
        total += 1
        sign = (first[i] > first[j]) - (first[i] < first[j])
        sign_second = (second[i] > second[j]) - (second[i] < second[j])
        tied_first += sign == 0
        tied_second += sign_second == 0
        concordant += sign * sign_second > 0
        discordant += sign * sign_second < 0
    denominator = math.sqrt((total - tied_first) * (total - tied_second))
    return (concordant - discordant) / denominator if denominator else None


def spearman_rho(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rho of paired scores: Pearson's r of their average ranks (1 - 6Σd² / (n(n² - 1)) without
    ties). None under two positions or when one side is all ties."""
    if len(first) < 2:
        return None
    ranks_first, ranks_second = average_ranks(first), average_ranks(second)
    mean_first, mean_second = sum(ranks_first) / len(first), sum(ranks_second) / len(second)
    dev_first = [rank - mean_first for rank in ranks_first]
    dev_second = [rank - mean_second for rank in ranks_second]
    denominator = math.sqrt(sum(d * d for d in dev_first) * sum(d * d for d in dev_second))
    if not denominator:
        return None
    return sum(a * b for a, b in zip(dev_first, dev_second, strict=True)) / denominator


def rank_correlations(first: Mapping[Hashable, float], second: Mapping[Hashable, float]) -> tuple:
    """(tau-b, rho) of two raters' scores (higher is better) over the answers both scored."""
    common = sorted(set(first) & set(second), key=str)
    xs, ys = [first[key] for key in common], [second[key] for key in common]
    return kendall_tau_b(xs, ys), spearman_rho(xs, ys)


def rank_figures(table: Table, *, raters: Collection[Hashable], rater: Hashable | None = None) -> dict[str, Any]:
    """Rank correlation over rater pairs of one item (values: answer → score, higher better; a ranking gives
    minus the position): the mean Kendall tau-b and Spearman rho over the pairs where they are defined."""
    taus, rhos = [], []
    for first, second in value_pairs(table, raters=raters, rater=rater):
        tau, rho = rank_correlations(first, second)
        taus.append(tau)
        rhos.append(rho)
    return {
        "units": shared_units(table, raters=raters, rater=rater),
        "pairs": sum(tau is not None for tau in taus),
        "kendall_tau": _mean(taus),
        "spearman_rho": _mean(rhos),
    }
