"""Reads about the AI labeler as an annotator (design.md §8): its agreement with people next to people's
agreement with each other, the same statistic both ways.

The statistic is pairwise percent agreement over pairs of raters who judged the same unit: for every unit,
every pair of distinct human raters counts once for "people with people", and every (labeler, human) pair
once for "labeler with people"; the share of those pairs that agree is the agreement, and their number is
`n`. Units and verdicts by project kind:

- pairwise: the unordered pair of responses; a person's verdict is the response they judged better (ties and
  "both bad" give no verdict), the labeler's is the response it scored higher (equal scores: none).
- correction: a response; a person's verdict is whether they marked any hallucinated segment, the
  labeler's is whether it doubted any claim (P(yes) <= 0.5).

Other kinds have no labeler statistic yet (`None`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from itertools import combinations

from annotation.models import AIFeedback, Correction, PairwiseJudgment, Project, ProjectKind

DOUBT_AT_MOST = 0.5


@dataclass(frozen=True)
class Agreement:
    agree: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.agree / self.n if self.n else None


@dataclass(frozen=True)
class LabelerAgreement:
    labeler_model: str
    with_people: Agreement


def _agreement(verdicts: dict[Hashable, dict[object, Hashable]], labeler: dict[Hashable, Hashable] | None) -> Agreement:
    """Pairwise percent agreement: among people (labeler None) or between the labeler and each person."""
    agree = n = 0
    for unit, people in verdicts.items():
        if labeler is None:
            pairs = combinations(people.values(), 2)
        elif unit in labeler:
            pairs = ((labeler[unit], verdict) for verdict in people.values())
        else:
            continue
        for first, second in pairs:
            n += 1
            agree += first == second
    return Agreement(agree=agree, n=n)


def _people_pairwise(project: Project) -> dict[Hashable, dict[object, Hashable]]:
    verdicts: dict[Hashable, dict[object, Hashable]] = defaultdict(dict)
    rows = PairwiseJudgment.objects.filter(item__project=project, choice__in=("a", "b")).values_list(
        "annotator_id", "response_a_id", "response_b_id", "choice"
    )
    for annotator, a, b, choice in rows:
        verdicts[frozenset((a, b))][annotator] = a if choice == "a" else b
    return verdicts


def _people_correction(project: Project) -> dict[Hashable, dict[object, Hashable]]:
    verdicts: dict[Hashable, dict[object, Hashable]] = defaultdict(dict)
    for annotator, response, segments in Correction.objects.filter(item__project=project).values_list(
        "annotator_id", "response_id", "segments"
    ):
        verdicts[response][annotator] = bool(segments)
    return verdicts


def _labeler_verdicts(project: Project, units: list[Hashable]) -> dict[str, dict[Hashable, Hashable]]:
    """Per labeler model, its verdict on every unit it judged (latest prompt version's feedback wins)."""
    scores: dict[str, dict[int, float]] = defaultdict(dict)
    doubts: dict[str, dict[int, bool]] = defaultdict(dict)
    for model, response, score, p_yes in (
        AIFeedback.objects.filter(response__project=project)
        .order_by("id")
        .values_list("labeler_model", "response_id", "score", "p_yes")
    ):
        scores[model][response] = score
        doubts[model][response] = any(p <= DOUBT_AT_MOST for p in p_yes or [])
    found: dict[str, dict[Hashable, Hashable]] = {}
    for model in scores:
        mine: dict[Hashable, Hashable] = {}
        for unit in units:
            if project.kind == ProjectKind.PAIRWISE:
                a, b = sorted(unit)
                if a in scores[model] and b in scores[model] and scores[model][a] != scores[model][b]:
                    mine[unit] = a if scores[model][a] > scores[model][b] else b
            elif unit in doubts[model]:
                mine[unit] = doubts[model][unit]
        found[model] = mine
    return found


def labeler_agreement(*, project: Project) -> dict | None:
    """`{"people": Agreement, "labelers": [LabelerAgreement, ...]}` for the project, or None for a kind the
    statistic does not cover (see the module docstring)."""
    if project.kind == ProjectKind.PAIRWISE:
        people = _people_pairwise(project)
    elif project.kind == ProjectKind.CORRECTION:
        people = _people_correction(project)
    else:
        return None
    labelers = _labeler_verdicts(project, list(people))
    return {
        "people": _agreement(people, None),
        "labelers": [
            LabelerAgreement(labeler_model=model, with_people=_agreement(people, verdicts))
            for model, verdicts in sorted(labelers.items())
        ],
    }
