"""Gold answers, grading against them, trust, and crowd-abuse flags: plain Python, no Django.

A gold task is a unit whose answer is known. Its answer, per project kind (positions are the responses'
import order, never the order an annotator was shown, which is random):

- pairwise: `{"choice": "a" | "b" | "tie" | "both_bad"}`, `a` = the response at position 0 is better,
  `b` = the one at position 1;
- rating: `{"level": <index into the project's scale, worst first, or the level's name>}`;
- ranking: `{"order": [positions, best first]}`, every position once;
- correction: `{"hallucination": false}`, or `{"hallucination": true, "segments": [{"text", "type"?}]}`
  where each segment's `text` occurs in the response (its first occurrence is the wrong part) and `type`,
  if given, is one of the project's hallucination types.

Grading (`gold_grade`): pairwise, rating and ranking are right when they say exactly that; a correction is
right when it marks nothing on an answer without hallucination, or, on one with, marks at least one segment
and overlaps every gold segment with a marked one (of the same type where the gold gives one).

Trust (`trust_score`) is the posterior mean of the probability that an annotator answers a gold task right,
under a Beta(`prior_right`, `prior_wrong`) prior: (right + prior_right) / (graded + prior_right +
prior_wrong). With the default Beta(1, 1) (uniform) an annotator not yet graded has trust 0.5, 4 right of 5
gives 5/7 ≈ 0.714, 0 of 5 gives 1/7; the prior keeps one lucky or unlucky answer from deciding.

Flags (`abuse_flags`): `straight_lining`, the same answer every time over at least
`straight_line_min_answers` answers (pairwise: the same choice, i.e. always the same side of the screen;
rating: the same level; ranking: the same order of screen positions; correction: never marking anything);
`too_fast`, a median time per answer below `too_fast_median_ms` over at least `too_fast_min_answers`
timed answers (answers without a time, e.g. imported ones, are not counted).
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

PAIRWISE_CHOICES = ("a", "b", "tie", "both_bad")


class GoldError(ValueError):
    """A gold answer that does not fit its task; the message names what is wrong."""


def gold_answer_check(
    *, kind: str, answer: Any, response_texts: Sequence[str], levels: Sequence[str], types: Sequence[str]
) -> dict[str, Any]:
    """The gold answer in its stored form, checked against the task (`response_texts` by position: the
    item's for pairwise and ranking, the one judged for rating and correction). Raises `GoldError`."""
    if not isinstance(answer, dict):
        raise GoldError("must be an object, e.g. " + _EXAMPLES[kind])
    if kind == "pairwise":
        choice = answer.get("choice")
        if choice not in PAIRWISE_CHOICES:
            raise GoldError(f"choice must be one of {', '.join(PAIRWISE_CHOICES)}, e.g. {_EXAMPLES[kind]}")
        if len(response_texts) < 2:
            raise GoldError("a pairwise gold task needs an item with two responses")
        return {"choice": choice}
    if kind == "rating":
        level = answer.get("level")
        if isinstance(level, str) and level in levels:
            level = list(levels).index(level)
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(levels):
            raise GoldError(f"level must be an index 0..{len(levels) - 1} or one of {', '.join(levels)}")
        return {"level": level}
    if kind == "ranking":
        order = answer.get("order")
        if (
            not isinstance(order, list)
            or any(isinstance(p, bool) or not isinstance(p, int) for p in order)
            or sorted(order) != list(range(len(response_texts)))
        ):
            raise GoldError(f"order must list every response position 0..{len(response_texts) - 1} once, best first")
        return {"order": list(order)}
    if kind == "correction":
        return _correction_gold(answer, text=response_texts[0], types=types)
    raise GoldError(f"unknown project kind {kind!r}")


_EXAMPLES = {
    "pairwise": '{"choice": "a"}',
    "rating": '{"level": 2}',
    "ranking": '{"order": [1, 0, 2]}',
    "correction": '{"hallucination": true, "segments": [{"text": "red", "type": "attribute"}]}',
}


def _correction_gold(answer: dict[str, Any], *, text: str, types: Sequence[str]) -> dict[str, Any]:
    hallucination = answer.get("hallucination")
    if not isinstance(hallucination, bool):
        raise GoldError("hallucination must be true or false")
    given = answer.get("segments") or []
    if not isinstance(given, list):
        raise GoldError("segments must be a list of {text, type}")
    if given and not hallucination:
        raise GoldError("segments are only for an answer with a hallucination")
    segments = []
    for index, segment in enumerate(given):
        if not isinstance(segment, dict) or not isinstance(segment.get("text"), str) or not segment["text"]:
            raise GoldError(f"segments[{index}] must be an object with a non-empty text")
        start = text.find(segment["text"])
        if start < 0:
            raise GoldError(f"segments[{index}].text {segment['text']!r} is not in the response")
        kind = segment.get("type")
        if kind is not None and kind not in types:
            raise GoldError(f"segments[{index}].type must be one of {', '.join(types)}")
        segments.append({"start": start, "end": start + len(segment["text"]), "text": segment["text"], "type": kind})
    return {"hallucination": hallucination, "segments": segments}


@dataclass(frozen=True)
class GivenAnswer:
    """An annotation in the terms grading needs. Positions are the responses' import positions.

    pairwise: `chosen`/`rejected` positions (None for a tie or both bad) and `choice`; rating: `level`;
    ranking: `order` of positions best first; correction: `segments` as stored (start, end, type)."""

    choice: str | None = None
    positions_shown: tuple[int, ...] = ()
    level: int | None = None
    order: tuple[int, ...] = ()
    segments: tuple[dict[str, Any], ...] = ()


def gold_grade(*, kind: str, gold: dict[str, Any], given: GivenAnswer) -> bool | None:
    """Whether the answer matches the gold answer; None where it cannot be graded (a pairwise judgment of
    two other responses of the item)."""
    if kind == "pairwise":
        if sorted(given.positions_shown[:2]) != [0, 1]:
            return None
        if gold["choice"] in ("tie", "both_bad") or given.choice in ("tie", "both_bad"):
            return gold["choice"] == given.choice
        # The annotator's a/b are screen sides; the gold's are positions 0/1.
        picked = given.positions_shown[0] if given.choice == "a" else given.positions_shown[1]
        return picked == (0 if gold["choice"] == "a" else 1)
    if kind == "rating":
        return given.level == gold["level"]
    if kind == "ranking":
        return list(given.order) == gold["order"]
    if kind == "correction":
        if not gold["hallucination"]:
            return not given.segments
        if not given.segments:
            return False
        return all(
            any(
                marked["start"] < wrong["end"]
                and wrong["start"] < marked["end"]
                and (wrong["type"] is None or marked.get("type") == wrong["type"])
                for marked in given.segments
            )
            for wrong in gold["segments"]
        )
    raise ValueError(f"unknown project kind {kind!r}")


def trust_score(*, right: int, graded: int, prior_right: float = 1.0, prior_wrong: float = 1.0) -> float:
    """Posterior mean of P(right) under a Beta(prior_right, prior_wrong) prior (module docstring)."""
    return (right + prior_right) / (graded + prior_right + prior_wrong)


@dataclass(frozen=True)
class FlagRules:
    straight_line_min_answers: int = 10
    too_fast_median_ms: int = 2000
    too_fast_min_answers: int = 5


def answer_signature(*, kind: str, given: GivenAnswer, screen_order: Sequence[int] = ()) -> Hashable:
    """What "the same answer" means for straight-lining (module docstring); for rankings `screen_order` is
    the order given as screen positions (0 = shown first), since the shown order is random per task."""
    if kind == "pairwise":
        return given.choice
    if kind == "rating":
        return given.level
    if kind == "ranking":
        return tuple(screen_order)
    return bool(given.segments)  # correction: marked something or not


def abuse_flags(*, answers: int, distinct_answers: int, times_ms: Sequence[int], rules: FlagRules) -> list[str]:
    """`straight_lining` and/or `too_fast` (module docstring): `distinct_answers` counts the different
    `answer_signature`s among the `answers` (2 stands for "more than one"); `times_ms` holds only measured
    times."""
    flags = []
    if answers >= rules.straight_line_min_answers and distinct_answers == 1:
        flags.append("straight_lining")
    if len(times_ms) >= rules.too_fast_min_answers and statistics.median(times_ms) < rules.too_fast_median_ms:
        flags.append("too_fast")
    return flags
