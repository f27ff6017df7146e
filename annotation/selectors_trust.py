"""Reads for gold and trust: each annotator's accuracy on gold tasks, trust score and crowd-abuse flags.

The rules (grading, the Beta-posterior trust, what straight-lining and too fast mean) are plain Python in
`annotation.gold_rules`; this module loads a project's annotations once, streaming, and applies them. The
thresholds are Django settings (`LOUPE_TRUST_PRIOR` = [prior right, prior wrong], default [1, 1];
`LOUPE_STRAIGHT_LINE_MIN_ANSWERS`, `LOUPE_TOO_FAST_MEDIAN_MS`, `LOUPE_TOO_FAST_MIN_ANSWERS`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from annotation.assignment import UNIT_ITEM, task_unit
from annotation.gold_rules import FlagRules, GivenAnswer, abuse_flags, answer_signature, gold_grade, trust_score
from annotation.models import CrowdParticipant, GoldAnswer, Project, ProjectKind, Response, annotation_model_for


def trust_prior() -> tuple[float, float]:
    right, wrong = getattr(settings, "LOUPE_TRUST_PRIOR", (1.0, 1.0))
    return float(right), float(wrong)


def flag_rules() -> FlagRules:
    defaults = FlagRules()
    return FlagRules(
        straight_line_min_answers=getattr(
            settings, "LOUPE_STRAIGHT_LINE_MIN_ANSWERS", defaults.straight_line_min_answers
        ),
        too_fast_median_ms=getattr(settings, "LOUPE_TOO_FAST_MEDIAN_MS", defaults.too_fast_median_ms),
        too_fast_min_answers=getattr(settings, "LOUPE_TOO_FAST_MIN_ANSWERS", defaults.too_fast_min_answers),
    )


@dataclass
class AnnotatorTrust:
    """One annotator's (or crowd participant's) record in a project."""

    annotator_id: int
    username: str
    crowd: bool
    answers: int = 0
    gold_graded: int = 0
    gold_right: int = 0
    accuracy: float | None = None
    trust: float = 0.0
    median_time_ms: int | None = None
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tally:
    answers: int = 0
    right: int = 0
    graded: int = 0
    signatures: set = field(default_factory=set)
    times: list[int] = field(default_factory=list)


_FIELDS = {
    ProjectKind.PAIRWISE: ("response_a_id", "response_b_id", "choice"),
    ProjectKind.RATING: ("response_id", "level"),
    ProjectKind.RANKING: ("order", "assignment__shown_order"),
    ProjectKind.CORRECTION: ("response_id", "segments"),
}


def _given(kind: str, values: tuple, positions: dict[int, int]) -> tuple[GivenAnswer, tuple[int, ...]]:
    """The annotation as `gold_rules` reads it, and (rankings) its order as screen positions."""
    if kind == ProjectKind.PAIRWISE:
        response_a, response_b, choice = values
        shown = (positions.get(response_a, -1), positions.get(response_b, -1))
        return GivenAnswer(choice=choice, positions_shown=shown), ()
    if kind == ProjectKind.RATING:
        return GivenAnswer(level=values[1]), ()
    if kind == ProjectKind.RANKING:
        order, shown = values
        screen = tuple(shown.index(pk) if pk in shown else pk for pk in order) if shown else tuple(order)
        return GivenAnswer(order=tuple(positions.get(pk, -1) for pk in order)), screen
    return GivenAnswer(segments=tuple(values[1] or ())), ()


def annotator_trust(*, project: Project) -> list[AnnotatorTrust]:
    """Every annotator of the project with their answers, gold accuracy, trust and flags, by username."""
    kind = project.kind
    per_item = task_unit(kind) == UNIT_ITEM
    gold = dict(GoldAnswer.objects.filter(project=project).values_list("unit_id", "answer"))
    gold_items = set(GoldAnswer.objects.filter(project=project).values_list("item_id", flat=True))
    # Import positions of the gold items' responses (pairwise and ranking answers name response ids).
    positions = dict(Response.objects.filter(item_id__in=gold_items).values_list("pk", "position")) if per_item else {}
    rules, (prior_right, prior_wrong) = flag_rules(), trust_prior()
    tallies: dict[int, _Tally] = {}
    rows = (
        annotation_model_for(project)
        .objects.filter(item__project=project)
        .order_by()
        .values_list("annotator_id", "item_id", "assignment_id", "time_spent_ms", *_FIELDS[kind])
    )
    for annotator_id, item_id, assignment_id, spent, *values in rows.iterator(chunk_size=5000):
        tally = tallies.setdefault(annotator_id, _Tally())
        tally.answers += 1
        given, screen = _given(kind, tuple(values), positions)
        if len(tally.signatures) < 2:  # only "one answer or more than one" matters
            tally.signatures.add(answer_signature(kind=kind, given=given, screen_order=screen))
        if assignment_id is not None and spent > 0:  # imported answers carry no time
            tally.times.append(spent)
        unit_id = item_id if per_item else values[0]
        if unit_id in gold:
            verdict = gold_grade(kind=kind, gold=gold[unit_id], given=given)
            if verdict is not None:
                tally.graded += 1
                tally.right += int(verdict)
    users = dict(get_user_model().objects.filter(pk__in=list(tallies)).values_list("pk", "username"))
    crowd = set(CrowdParticipant.objects.filter(user_id__in=list(tallies)).values_list("user_id", flat=True))
    result = []
    for annotator_id, tally in tallies.items():
        times = tally.times
        result.append(
            AnnotatorTrust(
                annotator_id=annotator_id,
                username=users.get(annotator_id, "?"),
                crowd=annotator_id in crowd,
                answers=tally.answers,
                gold_graded=tally.graded,
                gold_right=tally.right,
                accuracy=tally.right / tally.graded if tally.graded else None,
                trust=trust_score(
                    right=tally.right, graded=tally.graded, prior_right=prior_right, prior_wrong=prior_wrong
                ),
                median_time_ms=int(statistics.median(times)) if times else None,
                flags=abuse_flags(
                    answers=tally.answers,
                    distinct_answers=len(tally.signatures),
                    times_ms=times,
                    rules=rules,
                ),
            )
        )
    return sorted(result, key=lambda row: row.username)


def annotators_excluded(*, rows: Iterable[AnnotatorTrust], min_trust: float | None, exclude_flagged: bool) -> set[int]:
    """The annotator ids a snapshot filter leaves out: trust below `min_trust`, or any flag."""
    return {
        row.annotator_id
        for row in rows
        if (min_trust is not None and row.trust < min_trust) or (exclude_flagged and row.flags)
    }


def trust_summary(*, project: Project) -> dict[str, Any]:
    """What the dashboard's trust section and the trust API show."""
    rows = annotator_trust(project=project)
    prior_right, prior_wrong = trust_prior()
    rules = flag_rules()
    return {
        "gold_rate": project.gold_rate,
        "gold_tasks": GoldAnswer.objects.filter(project=project).count(),
        "prior": {"right": prior_right, "wrong": prior_wrong},
        "rules": asdict(rules),
        "annotators": [row.as_dict() for row in rows],
    }
