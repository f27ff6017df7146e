"""Reads about the AI labeler: its suggestion as an annotate page shows it, and the labeler as an annotator
on the dashboard (design.md §8): its agreement with people next to people's agreement with each other, the
same statistic both ways.

The statistic is pairwise percent agreement over pairs of raters who judged the same unit: for every unit,
every pair of distinct human raters counts once for "people with people", and every (labeler, human) pair
once for "labeler with people"; the share of those pairs that agree is the agreement, and their number is
`n`. Units and verdicts by project kind:

- pairwise: the unordered pair of responses; a person's verdict is the response they judged better (ties and
  "both bad" give no verdict), the labeler's is the response it scored higher (equal scores: none).
- correction: a response; a person's verdict is whether they marked any hallucinated segment, the
  labeler's is whether it doubted any claim (P(yes) <= 0.5).
- rating and ranking: the unordered pair of two responses of one item, as for pairwise; a person's verdict
  is the one they rated higher (both rated by them; equal levels: none) or ranked higher, the labeler's the
  one it scored higher (equal scores: none).

Why order agreement for ratings and rankings, rather than the labeler's scores turned into the project's
levels (by rank or quantiles) or into a full order: the labeler's score (minus its rejected claims, or mean
log P(yes)) is on no scale of the project's, so levels made from it would depend on a cut-off chosen for it
(quantiles copy the people's level shares onto it; ranks assume the answers' quality is spread evenly),
whereas which of two answers is better needs only the order both sides give. It is also the statistic the
pairwise projects already report, so the figures read the same across kinds, and ties (equal levels, which
a short scale makes common) are left out on both sides alike.

The verdict tables built here (`people_verdicts`, `labeler_verdicts`) also feed the project agreement report
(`annotation.selectors_agreement`), and the statistics live in `annotation.agreement`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from annotation.agreement import Agreement, percent_agreement, value_pairs
from annotation.models import AIFeedback, Correction, PairwiseJudgment, Project, ProjectKind, Ranking, Rating
from annotation.pair_rules import rewrite_segments

DOUBT_AT_MOST = 0.5
# What the dashboard says the figures are, by project kind.
STATISTIC = {
    ProjectKind.PAIRWISE: "agreement on which of two answers is better",
    ProjectKind.CORRECTION: "agreement on whether an answer has a hallucination",
    ProjectKind.RATING: "agreement on which of two answers is better (rated higher; equal levels left out)",
    ProjectKind.RANKING: "agreement on which of two answers is better (ranked higher)",
}


def ai_suggestion_of(feedback: AIFeedback) -> dict[str, Any]:
    """One verdict as the annotate page shows it: the score, each claim with its P(yes), where that came
    from (`source`: logits, logprobs or parsed) and its `span` in the answer (None where the claim is not
    in it verbatim; both keys absent where the verdict did not record them), and the rewrite with the
    correction segments that turn the answer into it (what "Use it" marks). `feedback.response` is read
    for the rewrite's segments."""
    p_yes = list(feedback.p_yes or [])
    sources = list(feedback.sources or [])
    spans = list(feedback.claim_spans or [])
    suggestion: dict[str, Any] = {
        "score": feedback.score,
        "labeler_model": feedback.labeler_model,
        "claims": [
            {
                "claim": str(claim),
                "p_yes": p_yes[k] if k < len(p_yes) else None,
                # Verdicts stored before sources and spans were recorded have neither key.
                **({"source": sources[k]} if k < len(sources) else {}),
                **({"span": spans[k]} if k < len(spans) else {}),
            }
            for k, claim in enumerate(feedback.claims or [])
        ],
    }
    text = (feedback.rewrite or {}).get("text")
    if text:  # the HA-DPO rewrite, only where a labeler job wrote one
        original = feedback.response.text
        suggestion["rewrite"] = text
        suggestion["rewrite_segments"] = [
            {"start": start, "end": end, "replacement": replacement, "original": original[start:end]}
            for start, end, replacement, _kind in rewrite_segments(original, text)
        ]
    return suggestion


@dataclass(frozen=True)
class LabelerAgreement:
    labeler_model: str
    with_people: Agreement


def _people_pairwise(project: Project, *, with_ties: bool = False) -> dict[Hashable, dict[object, Hashable]]:
    """Per pair of responses, the one each person judged better; with ties, None for "tie" and "both bad"
    (no preference), which are otherwise left out."""
    verdicts: dict[Hashable, dict[object, Hashable]] = defaultdict(dict)
    rows = PairwiseJudgment.objects.filter(item__project=project)
    if not with_ties:
        rows = rows.filter(choice__in=("a", "b"))
    for annotator, a, b, choice in rows.values_list("annotator_id", "response_a_id", "response_b_id", "choice"):
        verdicts[frozenset((a, b))][annotator] = a if choice == "a" else b if choice == "b" else None
    return verdicts


def _people_rating(project: Project) -> dict[Hashable, dict[object, Hashable]]:
    """Per pair of one item's responses both rated by a person, the one they rated higher."""
    levels: dict[tuple[int, object], dict[int, int]] = defaultdict(dict)
    for annotator, item, response, level in Rating.objects.filter(item__project=project).values_list(
        "annotator_id", "item_id", "response_id", "level"
    ):
        levels[(item, annotator)][response] = level
    verdicts: dict[Hashable, dict[object, Hashable]] = defaultdict(dict)
    for (_item, annotator), rated in levels.items():
        for (a, level_a), (b, level_b) in combinations(sorted(rated.items()), 2):
            if level_a != level_b:
                verdicts[frozenset((a, b))][annotator] = a if level_a > level_b else b
    return verdicts


def _people_ranking(project: Project) -> dict[Hashable, dict[object, Hashable]]:
    """Per pair of one item's responses a person ranked, the one they put first."""
    verdicts: dict[Hashable, dict[object, Hashable]] = defaultdict(dict)
    for annotator, order in Ranking.objects.filter(item__project=project).values_list("annotator_id", "order"):
        for better, worse in combinations([int(pk) for pk in order], 2):
            if better != worse:
                verdicts[frozenset((better, worse))][annotator] = better
    return verdicts


def _people_correction(project: Project) -> dict[Hashable, dict[object, Hashable]]:
    verdicts: dict[Hashable, dict[object, Hashable]] = defaultdict(dict)
    for annotator, response, segments in Correction.objects.filter(item__project=project).values_list(
        "annotator_id", "response_id", "segments"
    ):
        verdicts[response][annotator] = bool(segments)
    return verdicts


def people_verdicts(*, project: Project, with_ties: bool = False) -> dict[Hashable, dict[object, Hashable]] | None:
    """unit → {annotator id: verdict} as the module docstring says, by the project's kind (None for a kind
    without one); `with_ties` keeps a pairwise "tie" or "both bad" as the verdict None."""
    if project.kind == ProjectKind.PAIRWISE:
        return _people_pairwise(project, with_ties=with_ties)
    people_of = {
        ProjectKind.CORRECTION: _people_correction,
        ProjectKind.RATING: _people_rating,
        ProjectKind.RANKING: _people_ranking,
    }.get(project.kind)
    return None if people_of is None else people_of(project)


def labeler_verdicts(
    *, project: Project, units: list[Hashable], with_ties: bool = False
) -> dict[str, dict[Hashable, Hashable]]:
    """Per labeler model, its verdict on every unit it judged (latest prompt version's feedback wins);
    `with_ties` gives equal scores on a pair the verdict None (no preference) instead of none."""
    scores: dict[str, dict[int, float]] = defaultdict(dict)
    doubts: dict[str, dict[int, bool]] = defaultdict(dict)
    correction = project.kind == ProjectKind.CORRECTION
    # Only corrections read P(yes): decoding every verdict's JSON is most of the time this takes.
    fields = ("labeler_model", "response_id", "score", *(("p_yes",) if correction else ()))
    for model, response, score, *p_yes in (
        AIFeedback.objects.filter(response__project=project).order_by("id").values_list(*fields)
    ):
        scores[model][response] = score
        if correction:
            doubts[model][response] = any(p <= DOUBT_AT_MOST for p in p_yes[0] or [])
    found: dict[str, dict[Hashable, Hashable]] = {}
    for model in scores:
        mine: dict[Hashable, Hashable] = {}
        for unit in units:
            if project.kind != ProjectKind.CORRECTION:  # units are pairs of responses
                a, b = sorted(unit)
                if a not in scores[model] or b not in scores[model]:
                    continue
                if scores[model][a] != scores[model][b]:
                    mine[unit] = a if scores[model][a] > scores[model][b] else b
                elif with_ties:
                    mine[unit] = None
            elif unit in doubts[model]:
                mine[unit] = doubts[model][unit]
        found[model] = mine
    return found


def labeler_agreement(*, project: Project) -> dict | None:
    """`{"statistic", "people": Agreement, "labelers": [LabelerAgreement, ...]}` for the project, or None
    for a kind the statistic does not cover (see the module docstring)."""
    people = people_verdicts(project=project)
    if people is None:
        return None
    humans = {annotator for verdicts in people.values() for annotator in verdicts}
    rows = []
    for model, verdicts in sorted(labeler_verdicts(project=project, units=list(people)).items()):
        key = ("ai", model)  # never a user id
        table = {unit: {**people[unit], key: verdict} for unit, verdict in verdicts.items()}
        rows.append(
            LabelerAgreement(
                labeler_model=model,
                with_people=percent_agreement(list(value_pairs(table, raters=humans, rater=key))),
            )
        )
    return {
        "statistic": STATISTIC[project.kind],
        "people": percent_agreement(list(value_pairs(people, raters=humans))),
        "labelers": rows,
    }


def labeler_agreement_data(*, project: Project) -> dict[str, Any] | None:
    """`labeler_agreement` as plain data for the API: each side's agreeing pairs, pairs and rate."""
    found = labeler_agreement(project=project)
    if found is None:
        return None

    def shaped(agreement: Agreement) -> dict[str, Any]:
        return {"agree": agreement.agree, "n": agreement.n, "rate": agreement.rate}

    return {
        "statistic": found["statistic"],
        "people": shaped(found["people"]),
        "labelers": [
            {"labeler_model": row.labeler_model, "with_people": shaped(row.with_people)} for row in found["labelers"]
        ],
    }
