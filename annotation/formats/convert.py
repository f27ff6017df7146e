"""From imported `ItemRecord`s to the inputs of the pair rules in `annotation.pair_rules`.

The Django import stores records as items, responses and annotations; these functions do the same
mapping in plain Python, for round trips (export → import → the same pairs) and for tools that go
from a file straight to training data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from annotation.formats.common import ItemRecord
from annotation.pair_rules import (
    HUMOR_SCALE,
    RATING_SUMMARY_KEY,
    CorrectionInput,
    PairwiseVote,
    RankingInput,
    RatingAggregate,
    given_summary_fields,
)


def pairwise_votes_from_record(record: ItemRecord) -> list[PairwiseVote]:
    """One vote per pairwise judgment; responses are identified by their index in the record."""
    return [
        PairwiseVote(
            item_key=record.external_id,
            prompt=record.prompt,
            image=record.image,
            text_a=record.responses[j.response_a].text,
            text_b=record.responses[j.response_b].text,
            response_a_id=j.response_a,
            response_b_id=j.response_b,
            choice=j.choice,
            strength=j.strength,
            annotator=j.annotator,
        )
        for j in record.pairwise
    ]


def corrections_from_record(record: ItemRecord) -> list[CorrectionInput]:
    return [
        CorrectionInput(
            item_key=record.external_id,
            prompt=record.prompt,
            image=record.image,
            original_text=record.responses[c.response].text,
            corrected_text=c.corrected_text,
            segments=list(c.segments),
            annotator=c.annotator,
        )
        for c in record.corrections
    ]


def rankings_from_record(record: ItemRecord) -> list[RankingInput]:
    return [
        RankingInput(
            item_key=record.external_id,
            prompt=record.prompt,
            image=record.image,
            texts_in_order=[record.responses[i].text for i in r.order],
            annotator=r.annotator,
        )
        for r in record.rankings
    ]


def aggregates_from_record(record: ItemRecord, *, scale: Sequence[str] = HUMOR_SCALE) -> list[RatingAggregate]:
    """Rating counts per response: imported aggregate counts (or a summary given without them, see
    `RatingAggregate`) plus individual ratings, if any.

    Responses with none of these are left out. `response_key` is the caption's `target_id` where the file
    gave one, else its index.
    """
    individual: dict[int, Counter] = {}
    for rating in record.ratings:
        individual.setdefault(rating.response, Counter())[rating.level] += 1
    aggregates = []
    for index, response in enumerate(record.responses):
        summary = response.meta.get(RATING_SUMMARY_KEY)
        if response.rating_counts is None and index not in individual and not summary:
            continue
        counts = Counter(response.rating_counts or {})
        counts.update(individual.get(index, Counter()))
        aggregates.append(
            RatingAggregate(
                item_key=record.external_id,
                prompt=record.prompt,
                image=record.image,
                text=response.text,
                counts={level: counts[level] for level in scale if level in counts},
                scale=tuple(scale),
                response_key=str(response.meta.get("target_id", index)),
                meta=dict(response.meta),
                **given_summary_fields(summary),
            )
        )
    return aggregates
