"""Dataset snapshots: immutable, content-hashed files of rows frozen from a project's pairs."""

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import (
    DatasetSnapshot,
    PreferencePair,
    Project,
)
from loupe.errors import ApplicationError


@dataclass(frozen=True)
class SnapshotFilter:
    sources: tuple[str, ...] = ()
    min_agreement: float = 0.0
    min_margin: float = 0.0
    seed: int = 0
    test_fraction: float = 0.1

    def as_dict(self) -> dict:
        return {
            "sources": sorted(self.sources),
            "min_agreement": self.min_agreement,
            "min_margin": self.min_margin,
            "seed": self.seed,
            "test_fraction": self.test_fraction,
        }


def _split_of(*, item_key: str, seed: int, test_fraction: float) -> str:
    """'test' or 'train' for an item, stable across runs and machines: all pairs of an item share a side."""
    digest = hashlib.sha256(f"{seed}:{item_key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _snapshot_rows(*, project: Project, snapshot_filter: SnapshotFilter) -> Iterable[dict]:
    pairs = PreferencePair.objects.filter(
        project=project, agreement__gte=snapshot_filter.min_agreement, margin__gte=snapshot_filter.min_margin
    )
    if snapshot_filter.sources:
        pairs = pairs.filter(source__in=snapshot_filter.sources)
    pairs = pairs.order_by("item__external_id", "source", "chosen_text", "rejected_text").values_list(
        "item__external_id",
        "item__prompt",
        "item__image",
        "source",
        "chosen_text",
        "rejected_text",
        "margin",
        "agreement",
        "n_votes",
        "chosen_spans",
        "rejected_spans",
    )
    for key, prompt, image, source, chosen, rejected, margin, agreement, n_votes, c_spans, r_spans in pairs.iterator(
        chunk_size=5000
    ):
        yield {
            "item_key": key,
            "prompt": prompt,
            "image": image,
            "chosen": chosen,
            "rejected": rejected,
            "source": source,
            "margin": margin,
            "agreement": agreement,
            "n_votes": n_votes,
            "chosen_spans": c_spans,
            "rejected_spans": r_spans,
            "split": _split_of(item_key=key, seed=snapshot_filter.seed, test_fraction=snapshot_filter.test_fraction),
        }


def snapshot_create(
    *, project: Project, created_by: AbstractBaseUser | None, snapshot_filter: SnapshotFilter | None = None
) -> DatasetSnapshot:
    """Freeze the project's pairs that pass the filter into an immutable, content-hashed file.

    The hash covers the filter and every row, so freezing the same pairs with the same filter twice gives
    the same snapshot back rather than a second copy.
    """
    snapshot_filter = snapshot_filter or SnapshotFilter()
    snapshots_dir = Path(settings.SNAPSHOTS_DIR)
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(snapshot_filter.as_dict(), sort_keys=True).encode())
    counts = {"train": 0, "test": 0}
    with tempfile.NamedTemporaryFile("wb", dir=snapshots_dir, suffix=".partial", delete=False) as handle:
        for row in _snapshot_rows(project=project, snapshot_filter=snapshot_filter):
            line = json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n"
            digest.update(line)
            handle.write(line)
            counts[row["split"]] += 1
    content_hash = digest.hexdigest()
    if counts["train"] + counts["test"] == 0:
        os.unlink(handle.name)
        raise ApplicationError("No preference pairs pass this filter; nothing to freeze.")
    target = snapshots_dir / f"{content_hash}.jsonl"
    os.replace(handle.name, target)
    with transaction.atomic():
        snapshot, _ = DatasetSnapshot.objects.get_or_create(
            project=project,
            content_hash=content_hash,
            defaults={
                "filters": snapshot_filter.as_dict(),
                "n_rows": counts["train"] + counts["test"],
                "n_train": counts["train"],
                "n_test": counts["test"],
                "path": str(target),
                "created_by": created_by,
            },
        )
    return snapshot
