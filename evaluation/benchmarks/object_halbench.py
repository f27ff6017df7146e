"""Object HalBench (RLHF-V, Yu et al., CVPR 2024): object hallucination in detailed image descriptions.

A model describes COCO images in detail; CHAIR's object matching (`chair.ObjectMatcher`, the reference synonym
table, plurals and two-word objects) finds the objects each response names, and ground truth comes from the
image's COCO instances and captions as in CHAIR. Two rates:
- response level: the share of responses naming at least one object not in the image (CHAIR_s);
- mention level: the share of object mentions that name an object not in the image (CHAIR_i).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evaluation.benchmarks.chair import CaptionChair, CaptionInput, ObjectMatcher, chair_score


@dataclass
class ObjectHalBenchConfig:
    """How Object HalBench counts mentions."""

    unique_mentions: bool = field(
        default=False,
        metadata={"help": "Count each object once per response at mention level (off: every mention, as CHAIR)."},
    )


@dataclass
class ObjectHalBenchResult:
    response_rate: float
    mention_rate: float
    n_responses: int
    n_mentions: int
    n_hallucinated_mentions: int
    responses: list[CaptionChair]


def object_halbench_score(
    responses: Sequence[CaptionInput],
    ground_truth: dict,
    matcher: ObjectMatcher,
    config: ObjectHalBenchConfig | None = None,
) -> ObjectHalBenchResult:
    """Response- and mention-level hallucination rates of detailed descriptions."""
    config = config or ObjectHalBenchConfig()
    result = chair_score(responses, ground_truth, matcher)
    if not config.unique_mentions:
        n_mentions, n_bad = result.n_mentions, result.n_hallucinated_mentions
    else:
        n_mentions = sum(len({obj for _, obj in c.mentioned}) for c in result.captions)
        n_bad = sum(len({obj for _, obj in c.hallucinated}) for c in result.captions)
    return ObjectHalBenchResult(
        response_rate=result.chair_s,
        mention_rate=n_bad / n_mentions if n_mentions else 0.0,
        n_responses=result.n_captions,
        n_mentions=n_mentions,
        n_hallucinated_mentions=n_bad,
        responses=result.captions,
    )
