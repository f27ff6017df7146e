"""Human evaluation, MHumanEval-style (RLHF-V): hallucination rates by type from people's corrections.

People correct a model's answers to a fixed prompt set, marking wrong segments with a type (object, attribute,
count, position, other). Per type, the rate is the share of judged answers with at least one segment of that type;
"any" is the share with at least one segment of any type. The Django side turns correction rows into the
per-answer lists of segment types this function takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HALLUCINATION_TYPES: tuple[str, ...] = ("object", "attribute", "count", "position", "other")


@dataclass
class HumanEvalResult:
    rates: dict[str, float]  # type -> share of judged answers with such a segment, plus "any"
    n_answers: int
    n_segments: dict[str, int]


def human_eval_rates(
    segment_types: Sequence[Sequence[str]], types: Sequence[str] = HALLUCINATION_TYPES
) -> HumanEvalResult:
    """Per-type rates from one list of marked segment types per judged answer (an empty list: a clean answer).

    ``types`` are the types people could mark (a project's own list, e.g. "position/relation" for "position").
    """
    n = len(segment_types)
    with_type = dict.fromkeys(types, 0)
    n_segments = dict.fromkeys(types, 0)
    any_count = 0
    for marked in segment_types:
        for kind in marked:
            if kind not in with_type:
                raise ValueError(f"unknown hallucination type {kind!r}; expected one of {', '.join(types)}")
            n_segments[kind] += 1
        for kind in set(marked):
            with_type[kind] += 1
        any_count += bool(marked)
    rates = {kind: (count / n if n else 0.0) for kind, count in with_type.items()}
    rates["any"] = any_count / n if n else 0.0
    return HumanEvalResult(rates=rates, n_answers=n, n_segments=n_segments)
