"""The project agreement report: per project (people with each other) and per annotator (each against the
other people on the units they share), with every AI labeler model listed as an annotator and measured
against the people exactly as a person is (its verdicts from `AIFeedback`, as `labeler_agreement` reads them).
The statistics are `annotation.agreement`'s; this module only reads the rows into tables.

Measures by project kind (a measure the labeler cannot take part in has None in its row):

- pairwise, `preference`: which answer of the pair is better, or no preference (a person's "tie" or "both
  bad", the labeler's equal scores); nominal, units the pairs of answers, values relative to the pair
  (`first` = the answer with the lower id) so categories mean the same in every unit.
- correction, `hallucination`: whether the answer has one (a person marked a segment, the labeler doubted a
  claim); nominal, units the answers. `spans`: the marked segments, overlap F1, type F1 and character F1; the
  labeler's segments are the spans of the claims it doubted, without a type (so no type F1), and an answer
  where it doubted a claim it could not place in the text is left out for it.
- rating, `level`: the level given, ordinal (and interval) alpha; people only, as the labeler's score is on
  no scale of the project's (see `selectors_labeler`). `order`: which of two answers of one item is rated
  higher (equal levels left out), nominal, with the labeler.
- ranking, `rank`: Kendall's tau-b and Spearman's rho between two orders of one item (the labeler's by
  score, ties kept). `order`: which of two answers is ranked higher, nominal, with the labeler.

Every annotation of the project is read, so a large project's report takes seconds (about 2 s of statistics
per 100k annotations on one core): the dashboard and the API keep it in the cache under a key that changes
with the project's annotations (their number and latest change) and its AI feedback, for at most
`CACHE_SECONDS` (a labeler re-judging answers in place changes neither). `manage.py agreement` computes it
afresh.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Count, Max

from annotation import agreement as stats
from annotation.models import AIFeedback, Correction, Project, ProjectKind, Ranking, Rating, annotation_model_for
from annotation.selectors_labeler import DOUBT_AT_MOST, labeler_verdicts, people_verdicts

Table = dict[Hashable, dict[Hashable, Any]]


@dataclass(frozen=True)
class Measure:
    name: str
    description: str
    level: str  # of the values: nominal, ordinal, or "spans"/"ranks" for the pair statistics
    figures: Callable[..., dict[str, Any]]  # (table, raters=, rater=) → figures
    people: Table
    labelers: dict[str, Table] | None  # labeler model → its values (unit → value); None: it takes no part


def _labeler_key(model: str) -> tuple[str, str]:
    return ("ai", model)  # never a user id


def _relative(unit: frozenset, verdict: int | None) -> str:
    """A verdict on a pair of answers as a category that means the same in every unit."""
    if verdict is None:
        return "none"
    return "first" if verdict == min(unit) else "second"


def _relative_table(verdicts: dict) -> Table:
    return {unit: {who: _relative(unit, value) for who, value in by.items()} for unit, by in verdicts.items()}


def _order_measure(project: Project, *, name: str, description: str, with_ties: bool) -> Measure:
    people = people_verdicts(project=project, with_ties=with_ties) or {}
    labelers = labeler_verdicts(project=project, units=list(people), with_ties=with_ties)
    domain = ["first", "second", "none"] if with_ties else ["first", "second"]
    return Measure(
        name=name,
        description=description,
        level=stats.NOMINAL,
        figures=partial(stats.categorical_figures, level=stats.NOMINAL, domain=domain),
        people=_relative_table(people),
        labelers={model: {unit: _relative(unit, v) for unit, v in by.items()} for model, by in labelers.items()},
    )


def _hallucination_measure(project: Project) -> Measure:
    people = people_verdicts(project=project) or {}
    labelers = labeler_verdicts(project=project, units=list(people))
    return Measure(
        name="hallucination",
        description="whether an answer has a hallucination (Krippendorff's alpha, nominal; Cohen's and Fleiss' kappa)",
        level=stats.NOMINAL,
        figures=partial(stats.categorical_figures, level=stats.NOMINAL, domain=[False, True]),
        people=people,
        labelers=labelers,
    )


def _spans_measure(project: Project) -> Measure:
    people: Table = defaultdict(dict)
    for annotator, response, segments in Correction.objects.filter(item__project=project).values_list(
        "annotator_id", "response_id", "segments"
    ):
        people[response][annotator] = [(s["start"], s["end"], s.get("type")) for s in segments or []]
    labelers: dict[str, Table] = defaultdict(dict)
    for model, response, p_yes, spans in (
        AIFeedback.objects.filter(response__project=project)
        .order_by("id")
        .values_list("labeler_model", "response_id", "p_yes", "claim_spans")
    ):
        if response not in people:
            continue
        doubted = [k for k, p in enumerate(p_yes or []) if p <= DOUBT_AT_MOST]
        spans = list(spans or [])
        placed = [spans[k] for k in doubted if k < len(spans) and spans[k]]
        if len(placed) == len(doubted):  # every doubted claim has its place in the answer
            labelers[model][response] = sorted((int(start), int(end), None) for start, end in placed)
        else:
            labelers[model].pop(response, None)
    return Measure(
        name="spans",
        description="the marked segments of an answer: overlap F1, with the same type, and character F1",
        level="spans",
        figures=stats.span_figures,
        people=dict(people),
        labelers=dict(labelers),
    )


def _level_measure(project: Project) -> Measure:
    people: Table = defaultdict(dict)
    for annotator, response, level in Rating.objects.filter(item__project=project).values_list(
        "annotator_id", "response_id", "level"
    ):
        people[response][annotator] = level
    top = max([len(project.rating_levels or []) - 1, *(v for by in people.values() for v in by.values())], default=0)
    domain = list(range(max(top, 1) + 1))

    def figures(table: Table, *, raters: set, rater: Hashable | None = None) -> dict[str, Any]:
        found = stats.categorical_figures(table, raters=raters, rater=rater, level=stats.ORDINAL, domain=domain)
        if rater is None:
            found["alpha_interval"] = stats.alpha(table, raters=raters, level=stats.INTERVAL, domain=domain)
        else:
            pairs = list(stats.value_pairs(table, raters=raters, rater=rater))
            found["alpha_interval"] = stats.alpha_of_pairs(pairs, level=stats.INTERVAL, domain=domain)
        return found

    return Measure(
        name="level",
        description="the level given (Krippendorff's alpha, ordinal; also interval); people only",
        level=stats.ORDINAL,
        figures=figures,
        people=dict(people),
        labelers=None,
    )


def _rank_measure(project: Project) -> Measure:
    people: Table = defaultdict(dict)
    for annotator, item, order in Ranking.objects.filter(item__project=project).values_list(
        "annotator_id", "item_id", "order"
    ):
        people[item][annotator] = {int(pk): -position for position, pk in enumerate(order)}
    scores: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for model, item, response, score in (
        AIFeedback.objects.filter(response__project=project)
        .order_by("id")
        .values_list("labeler_model", "response__item_id", "response_id", "score")
    ):
        if item in people:
            scores[model][item][response] = score
    return Measure(
        name="rank",
        description="the order of one item's answers (Kendall's tau-b and Spearman's rho)",
        level="ranks",
        figures=stats.rank_figures,
        people=dict(people),
        labelers={model: {item: s for item, s in by.items() if len(s) >= 2} for model, by in scores.items()},
    )


def _measures(project: Project) -> list[Measure]:
    order = partial(_order_measure, project, name="order", with_ties=False)
    if project.kind == ProjectKind.PAIRWISE:
        return [
            _order_measure(
                project,
                name="preference",
                description="which answer is better, or no preference (tie, both bad; the labeler's equal "
                "scores): Krippendorff's alpha, nominal; Cohen's and Fleiss' kappa",
                with_ties=True,
            )
        ]
    if project.kind == ProjectKind.CORRECTION:
        return [_hallucination_measure(project), _spans_measure(project)]
    if project.kind == ProjectKind.RATING:
        return [
            _level_measure(project),
            order(description="which of two answers is rated higher, equal levels left out (nominal)"),
        ]
    if project.kind == ProjectKind.RANKING:
        return [_rank_measure(project), order(description="which of two answers is ranked higher (nominal)")]
    return []


# The figure the dashboard plots per annotator: the first measure the labeler takes part in.
HEADLINE = {
    ProjectKind.PAIRWISE: ("preference", "alpha"),
    ProjectKind.CORRECTION: ("hallucination", "alpha"),
    ProjectKind.RATING: ("order", "alpha"),
    ProjectKind.RANKING: ("rank", "kendall_tau"),
}


def agreement_report(*, project: Project) -> dict[str, Any]:
    """`{"project", "kind", "measures": {name: {"description", "level"}}, "people": {name: figures},
    "annotators": [{"annotator", "labeler_model", "measures": {name: figures or None}}]}`: people first
    (by username), then the AI labeler models. See `annotation.agreement` for the figures."""
    measures = _measures(project)
    humans = {who for measure in measures for by in measure.people.values() for who in by}
    models = sorted({model for measure in measures for model in measure.labelers or {}})
    names = dict(get_user_model().objects.filter(pk__in=humans).values_list("pk", "username"))
    # One rater's figures read only the units they judged: index them once rather than scan every unit per rater.
    units_of: dict[str, dict[Hashable, list]] = {m.name: defaultdict(list) for m in measures}
    for measure in measures:
        for unit, by in measure.people.items():
            for who in by:
                units_of[measure.name][who].append(unit)

    def mine(measure: Measure, who: Hashable) -> Table:
        return {unit: measure.people[unit] for unit in units_of[measure.name][who]}

    rows: list[dict[str, Any]] = [
        {
            "annotator": names[who],
            "labeler_model": None,
            "measures": {m.name: m.figures(mine(m, who), raters=humans, rater=who) for m in measures},
        }
        for who in sorted(humans, key=lambda pk: (names[pk], pk))
    ]
    for model in models:
        key = _labeler_key(model)
        figures: dict[str, dict[str, Any] | None] = {}
        for measure in measures:
            if measure.labelers is None:
                figures[measure.name] = None
                continue
            values = measure.labelers.get(model, {})
            table = {unit: {**measure.people[unit], key: value} for unit, value in values.items()}
            figures[measure.name] = measure.figures(table, raters=humans, rater=key)
        rows.append({"annotator": f"AI labeler {model}", "labeler_model": model, "measures": figures})
    return {
        "project": project.slug,
        "kind": project.kind,
        "measures": {m.name: {"description": m.description, "level": m.level} for m in measures},
        "people": {m.name: m.figures(m.people, raters=humans) for m in measures},
        "annotators": rows,
    }


CACHE_SECONDS = 300


def agreement_report_cached(*, project: Project) -> dict[str, Any]:
    """`agreement_report`, from the cache while the project's annotations and AI feedback are unchanged (and
    for at most CACHE_SECONDS)."""
    people = (
        annotation_model_for(project)
        .objects.filter(item__project=project)
        .aggregate(n=Count("id"), last=Max("updated_at"))
    )
    machines = AIFeedback.objects.filter(response__project=project).aggregate(n=Count("id"), last=Max("id"))
    version = (
        people["n"],
        people["last"],
        machines["n"],
        machines["last"],
        project.kind,
        len(project.rating_levels or []),
    )
    key = f"agreement-report:{project.pk}:{hashlib.sha256(repr(version).encode()).hexdigest()}"
    report = cache.get(key)
    if report is None:
        report = agreement_report(project=project)
        cache.set(key, report, timeout=CACHE_SECONDS)
    return report


# The dashboard's columns per kind of measure: (figure, title).
COLUMNS = {
    stats.NOMINAL: [("alpha", "α"), ("cohen_kappa", "κ"), ("percent_agreement", "agree"), ("pairs", "pairs")],
    stats.ORDINAL: [("alpha", "α ordinal"), ("alpha_interval", "α interval"), ("pairs", "pairs")],
    "spans": [
        ("segment_f1", "segment F1"),
        ("type_f1", "type F1"),
        ("character_f1", "character F1"),
        ("pairs", "pairs"),
    ],
    "ranks": [("kendall_tau", "τ"), ("spearman_rho", "ρ"), ("pairs", "pairs")],
}
PLOT_LEFT, PLOT_RIGHT, ROW_HEIGHT = 240, 600, 22


def _plot_x(value: float) -> float:
    """A statistic in [-1, 1] as an x position in the plot (its bars start at 0)."""
    return round(PLOT_LEFT + (max(-1.0, min(1.0, value)) + 1) / 2 * (PLOT_RIGHT - PLOT_LEFT), 1)


def agreement_dashboard(*, project: Project) -> dict[str, Any]:
    """The report as the dashboard shows it: a table (a row for people with each other, then one per
    annotator, the AI labeler models last; columns per measure, COLUMNS) and per annotator a bar of the
    headline figure (HEADLINE) from 0 in [-1, 1], with the people's figure as a line."""
    report = agreement_report_cached(project=project)
    columns = [
        {"measure": name, "figure": figure, "title": title, "count": figure == "pairs"}
        for name, measure in report["measures"].items()
        for figure, title in COLUMNS[measure["level"]]
    ]

    def cells(measures: dict[str, Any]) -> list[float | int | None]:
        return [(measures.get(column["measure"]) or {}).get(column["figure"]) for column in columns]

    rows = [{"label": "people with each other", "who": "people", "cells": cells(report["people"])}]
    rows += [
        {
            "label": row["annotator"],
            "who": "labeler" if row["labeler_model"] else "person",
            "cells": cells(row["measures"]),
        }
        for row in report["annotators"]
    ]
    measure, figure = HEADLINE.get(project.kind, (None, None))
    zero = _plot_x(0.0)
    bars = []
    for k, row in enumerate(report["annotators"]):
        value = (row["measures"].get(measure) or {}).get(figure)
        x = _plot_x(value) if value is not None else zero
        top = 24 + k * ROW_HEIGHT
        bars.append(
            {
                "label": row["annotator"],
                "labeler": row["labeler_model"] is not None,
                "value": value,
                "x": min(x, zero),
                "width": round(abs(x - zero), 1),
                "y": top,
                "text_y": top + 13,
            }
        )
    people_value = (report["people"].get(measure) or {}).get(figure)
    fleiss = {name: figures["fleiss_kappa"] for name, figures in report["people"].items() if "fleiss_kappa" in figures}
    return {
        "report": report,
        "columns": columns,
        "groups": [{"name": name, "span": len(COLUMNS[m["level"]])} for name, m in report["measures"].items()],
        "count_columns": [k for k, column in enumerate(columns) if column["count"]],
        "rows": rows,
        "fleiss": fleiss,
        "headline": {"measure": measure, "title": dict(COLUMNS[report["measures"][measure]["level"]])[figure]}
        if measure in report["measures"]
        else None,
        "people_value": people_value,
        "bars": bars,
        "people_x": _plot_x(people_value) if people_value is not None else None,
        "zero_x": zero,
        "left_x": PLOT_LEFT,
        "right_x": PLOT_RIGHT,
        "minus_half_x": _plot_x(-0.5),
        "half_x": _plot_x(0.5),
        "height": 24 + len(bars) * ROW_HEIGHT + 24,
        "axis_y": 24 + len(bars) * ROW_HEIGHT + 14,
    }
