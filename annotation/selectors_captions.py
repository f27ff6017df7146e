"""Reads of a rating project's captions as a contest: the votes per level of every caption (for the sampler
and the live caption table), the table itself (sorted, searched, paginated here), and its caption-contest CSV.

A caption's votes are the project's own ratings, counted by `ResponseRatingCount` (kept by every submit, so
nothing here scans `Rating` rows), plus what an import stored with the caption: level counts
(`Response.meta["rating_counts"]`, keyed by the project's level names) or a summary without them (mean,
precision, votes; `pair_rules.RATING_SUMMARY_KEY`). Means, precisions and ranks are those of the
caption-contest tables (`pair_rules.RatingAggregate`): level k of the scale scores k + 1.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection

from annotation.formats.caption_contest import WRITTEN_COLUMNS, caption_contest_row
from annotation.formats.common import json_loads
from annotation.models import GoldAnswer, Item, Project, Response, ResponseRatingCount
from annotation.pair_rules import HUMOR_SCALE, RATING_SUMMARY_KEY, RatingAggregate, given_summary_fields

CAPTION_SORTS = ("rank", "-rank", "votes", "-votes", "mean", "-mean", "precision", "-precision", "caption", "-caption")
MAX_PAGE = 200
# 95% normal interval of a mean from its standard error.
Z_95 = 1.959963984540054


def _table(model: type) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _rows(query: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


@dataclass
class CaptionVotes:
    """Every caption (response) of a rating project with its votes, as arrays in response-id order.

    `counts[i, k]` votes at level k (worst first), the project's own plus imported counts; a summary imported
    without counts adds `given_votes[i]` votes with mean `given_mean[i]` and standard error
    `given_precision[i]` (0 where none)."""

    ids: np.ndarray
    item_ids: np.ndarray
    counts: np.ndarray
    given_votes: np.ndarray
    given_mean: np.ndarray
    given_precision: np.ndarray

    @property
    def votes(self) -> np.ndarray:
        return self.counts.sum(axis=1) + self.given_votes

    @property
    def totals(self) -> np.ndarray:
        """Each caption's sum of scores (level k scores k + 1)."""
        values = np.arange(1, self.counts.shape[1] + 1, dtype=np.float64)
        return self.counts @ values + self.given_mean * self.given_votes


def caption_votes_imported(*, project: Project) -> CaptionVotes:
    """The project's captions (gold captions left out) with the votes their import carried; the project's own
    ratings are added by `caption_votes_live_counts`. Reads each caption's metadata: a few ms per thousand."""
    levels = list(project.rating_levels)
    gold = _table(GoldAnswer)
    rows = _rows(
        f"SELECT r.id, r.item_id, r.meta FROM {_table(Response)} r WHERE r.project_id = %s "  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM {gold} g WHERE g.project_id = r.project_id AND g.unit_id = r.id) "
        "ORDER BY r.id",
        [project.pk],
    )
    n = len(rows)
    # Plain lists, then one array each: item assignment into numpy arrays costs microseconds per cell.
    column = {level: k for k, level in enumerate(levels)}
    counts = [[0.0] * max(len(levels), 1) for _ in range(n)]
    given_votes, given_mean, given_precision = [0.0] * n, [0.0] * n, [0.0] * n
    for i, (_, _, meta) in enumerate(rows):
        if not meta:
            continue
        if isinstance(meta, str | bytes):
            if "rating_counts" not in meta and RATING_SUMMARY_KEY not in meta:
                continue
            meta = json_loads(meta)
        for level, votes in (meta.get("rating_counts") or {}).items():
            if level in column:
                counts[i][column[level]] += int(votes)
        summary = meta.get(RATING_SUMMARY_KEY)
        if summary:
            fields = given_summary_fields(summary)
            given_votes[i] = fields["given_votes"]
            given_mean[i] = fields["given_mean"]
            given_precision[i] = fields["given_precision"]
    return CaptionVotes(
        ids=np.array([row[0] for row in rows], dtype=np.int64),
        item_ids=np.array([row[1] for row in rows], dtype=np.int64),
        counts=np.array(counts, dtype=np.float64).reshape(n, max(len(levels), 1)),
        given_votes=np.array(given_votes),
        given_mean=np.array(given_mean),
        given_precision=np.array(given_precision),
    )


def caption_votes_live_counts(*, project: Project, ids: np.ndarray, levels: int) -> np.ndarray:
    """The project's own ratings per caption and level (`ResponseRatingCount`), rows in the order of `ids`."""
    counts = np.zeros((len(ids), max(levels, 1)))
    rows = _rows(
        f"SELECT c.response_id, c.level, c.n_ratings FROM {_table(ResponseRatingCount)} c "  # noqa: S608
        f"JOIN {_table(Response)} r ON r.id = c.response_id WHERE r.project_id = %s AND c.n_ratings > 0",
        [project.pk],
    )
    if not rows or not len(ids):
        return counts
    found = np.array(rows, dtype=np.int64)
    index = np.searchsorted(ids, found[:, 0])
    index = np.minimum(index, len(ids) - 1)
    keep = (ids[index] == found[:, 0]) & (found[:, 1] < levels)
    np.add.at(counts, (index[keep], found[keep, 1]), found[keep, 2])
    return counts


def captions_signature(*, project: Project) -> tuple:
    """Changes when the project's captions or gold captions are added or removed, or its scale changes: then
    the votes imported with them must be read again (two index reads)."""
    count, last = _rows(
        f"SELECT COUNT(*), MAX(id) FROM {_table(Response)} WHERE project_id = %s",  # noqa: S608
        [project.pk],
    )[0]
    gold = _rows(f"SELECT COUNT(*) FROM {_table(GoldAnswer)} WHERE project_id = %s", [project.pk])[0][0]  # noqa: S608
    return (project.pk, project.created_at, count, last, gold, tuple(project.rating_levels))


# The imported votes of the projects this process read lately (their captions' metadata: ~0.1–0.3 s to parse
# at 10,000 captions), by project; an entry is good while `captions_signature` stays the same.
_imported: dict[int, tuple[tuple, CaptionVotes]] = {}
_IMPORTED_KEPT = 8


def caption_votes(*, project: Project) -> CaptionVotes:
    """Every caption's votes: imported (kept between calls, see `_imported`) plus the project's own."""
    signature = captions_signature(project=project)
    kept = _imported.get(project.pk)
    if kept is None or kept[0] != signature:
        if len(_imported) >= _IMPORTED_KEPT:
            _imported.pop(next(iter(_imported)))
        kept = (signature, caption_votes_imported(project=project))
        _imported[project.pk] = kept
    imported = kept[1]
    return CaptionVotes(
        ids=imported.ids,
        item_ids=imported.item_ids,
        counts=imported.counts
        + caption_votes_live_counts(project=project, ids=imported.ids, levels=len(project.rating_levels)),
        given_votes=imported.given_votes,
        given_mean=imported.given_mean,
        given_precision=imported.given_precision,
    )


def _means_and_precisions(votes: CaptionVotes) -> tuple[np.ndarray, np.ndarray]:
    """`RatingAggregate.mean` and `.precision` of every caption at once (NaN mean and inf precision without
    votes)."""
    n = votes.votes
    values = np.arange(1, votes.counts.shape[1] + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = votes.totals / n
        squares = ((values[None, :] - mean[:, None]) ** 2 * votes.counts).sum(axis=1)
        g = votes.given_votes
        squares = squares + votes.given_precision**2 * g * np.maximum(g - 1, 0) + g * (votes.given_mean - mean) ** 2
        precision = np.sqrt(np.maximum(1.0, squares) / (n - 1) / n)
    precision = np.where(n == 1, (votes.counts.shape[1] - 1) / 2, precision)
    precision = np.where(n == 0, np.inf, precision)
    return mean, precision


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def caption_table(
    *,
    project: Project,
    sort: str = "rank",
    search: str = "",
    offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:
    """One page of the live caption table: per caption its votes per level, mean, precision (standard error),
    95% interval (normal, clipped to the scale) and rank (1 = highest mean over all captions; captions
    without votes rank last). `sort` is one of `CAPTION_SORTS` (a leading `-` reverses), `search` matches
    caption text (case-insensitive), and `total` counts the captions that match."""
    if sort not in CAPTION_SORTS:
        raise ValueError(f"sort must be one of {', '.join(CAPTION_SORTS)}")
    votes = caption_votes(project=project)
    mean, precision = _means_and_precisions(votes)
    n_votes = votes.votes
    ranked_mean = np.where(n_votes > 0, mean, -np.inf)
    by_rank = np.lexsort((votes.ids, -ranked_mean))
    rank = np.empty(len(by_rank), dtype=np.int64)
    rank[by_rank] = np.arange(1, len(by_rank) + 1)
    selected = np.arange(len(votes.ids))
    texts: dict[int, str] = {}
    key = sort.lstrip("-")
    if search.strip() or key == "caption":
        matches = Response.objects.filter(project=project)
        if search.strip():
            matches = matches.filter(text__icontains=search.strip())
        texts = dict(matches.values_list("id", "text"))
        selected = selected[np.isin(votes.ids, np.fromiter(texts, dtype=np.int64, count=len(texts)))]
    if key == "caption":
        order = sorted(selected.tolist(), key=lambda i: (texts[int(votes.ids[i])].casefold(), int(votes.ids[i])))
        selected = np.array(order, dtype=np.int64)
    else:
        column = {"rank": rank, "votes": n_votes, "mean": np.nan_to_num(mean, nan=-np.inf), "precision": precision}[key]
        selected = selected[np.lexsort((rank[selected], column[selected]))]
    if sort.startswith("-"):
        selected = selected[::-1]
    total = len(selected)
    page = selected[offset : offset + min(max(limit, 1), MAX_PAGE)]
    page_ids = [int(votes.ids[i]) for i in page]
    page_texts = dict(Response.objects.filter(pk__in=page_ids).values_list("id", "text"))
    levels = list(project.rating_levels)
    rows = []
    for i in page:
        m, p = float(mean[i]), float(precision[i])
        has_votes = n_votes[i] > 0
        rows.append(
            {
                "response_id": int(votes.ids[i]),
                "item_id": int(votes.item_ids[i]),
                "caption": page_texts.get(int(votes.ids[i]), ""),
                "counts": {level: int(votes.counts[i, k]) for k, level in enumerate(levels)},
                "summary_votes": int(votes.given_votes[i]),
                "votes": int(n_votes[i]),
                "mean": _number(m) if has_votes else None,
                "precision": _number(p) if has_votes else None,
                # Clipped to the scale (1 to L): a mean cannot lie outside it.
                "ci_low": _number(max(1.0, m - Z_95 * p)) if has_votes else None,
                "ci_high": _number(min(float(len(levels)), m + Z_95 * p)) if has_votes else None,
                "rank": int(rank[i]),
            }
        )
    return {"total": total, "offset": offset, "limit": min(max(limit, 1), MAX_PAGE), "levels": levels, "rows": rows}


def caption_items(*, project: Project) -> list[Item]:
    """The project's items (cartoons) in id order: one caption-contest table each."""
    return list(Item.objects.filter(project=project).order_by("id").only("id", "external_id", "image", "prompt"))


def caption_contest_csv(*, project: Project, item: Item) -> str:
    """The item's captions as a caption-contest table (the format `caption-contest-csv` exports and imports
    read), ranked by mean, with the votes as they stand now. The project must rate on three levels, worst
    first, as the contest does (`ValueError` otherwise)."""
    levels = list(project.rating_levels)
    if len(levels) != len(HUMOR_SCALE):
        raise ValueError(f"Caption-contest tables have three levels {HUMOR_SCALE}; this project rates on {levels}.")
    votes = caption_votes(project=project)
    mine = np.flatnonzero(votes.item_ids == item.pk)
    responses = {r.pk: r for r in Response.objects.filter(item=item).only("id", "text", "meta")}
    aggregates = []
    for i in mine:
        response = responses[int(votes.ids[i])]
        meta = response.meta or {}
        counted = votes.counts[i]  # the project's own ratings and imported level counts
        aggregates.append(
            RatingAggregate(
                item_key=item.external_id,
                prompt=item.prompt,
                image=item.image or None,
                text=response.text,
                counts={HUMOR_SCALE[k]: int(counted[k]) for k in range(len(HUMOR_SCALE)) if counted[k]},
                response_key=str(response.pk),
                meta={k: v for k, v in meta.items() if k in ("target_id",)},
                **given_summary_fields(meta.get(RATING_SUMMARY_KEY)),
            )
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(WRITTEN_COLUMNS)
    ranked = sorted(aggregates, key=lambda a: (-(a.mean if a.votes else -math.inf), a.text))
    for rank, aggregate in enumerate(ranked, start=1):
        writer.writerow(caption_contest_row(aggregate, rank=rank, contest=item.external_id))
    return out.getvalue()


def caption_dashboard(*, project: Project) -> dict[str, Any] | None:
    """What the dashboard's caption card needs (its rows come from the API); None for other kinds."""
    if project.kind != "rating":
        return None
    return {
        "levels": list(project.rating_levels),
        "items": [item.external_id for item in caption_items(project=project)],
        "sampling": "adaptive (KL-LUCB)" if project.rating_sampling == "adaptive" else "uniform (least-rated first)",
        "top_k": project.rating_top_k,
        "contest_csv": len(project.rating_levels) == len(HUMOR_SCALE),
    }
