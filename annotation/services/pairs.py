"""Preference pairs derived from annotations (the rules themselves live in `annotation.pairs`)."""

from collections.abc import Iterator

from django.db import transaction

from annotation import pairs as pair_rules
from annotation.models import (
    Item,
    PairSource,
    PairwiseJudgment,
    PreferencePair,
)


def _pairwise_votes(item: Item) -> Iterator[pair_rules.PairwiseVote]:
    judgments = PairwiseJudgment.objects.filter(item=item).select_related("response_a", "response_b")
    for judgment in judgments:
        yield pair_rules.PairwiseVote(
            item_key=item.external_id,
            prompt=item.prompt,
            image=item.image,
            text_a=judgment.response_a.text,
            text_b=judgment.response_b.text,
            response_a_id=judgment.response_a_id,
            response_b_id=judgment.response_b_id,
            choice=judgment.choice,
            strength=judgment.strength,
            annotator=str(judgment.annotator_id),
        )


@transaction.atomic
def preference_pairs_refresh(*, item: Item) -> list[PreferencePair]:
    """Re-derive an item's pairs from its annotations (the rules live in `annotation.pairs`)."""
    PreferencePair.objects.filter(item=item, source=PairSource.PAIRWISE).delete()
    rows = pair_rules.pairs_from_pairwise(_pairwise_votes(item))
    return PreferencePair.objects.bulk_create(
        PreferencePair(
            project_id=item.project_id,
            item=item,
            source=PairSource.PAIRWISE,
            chosen_response_id=row.meta["chosen_response"],
            rejected_response_id=row.meta["rejected_response"],
            chosen_text=row.chosen,
            rejected_text=row.rejected,
            margin=row.margin if row.margin is not None else 1.0,
            agreement=row.agreement if row.agreement is not None else 1.0,
            n_votes=row.n_votes,
            chosen_spans=[list(span) for span in row.chosen_spans],
            rejected_spans=[list(span) for span in row.rejected_spans],
        )
        for row in rows
    )
