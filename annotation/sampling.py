"""Which caption a rating project shows next: least-rated first, or a bandit that looks for the top k.

Plain Python and numpy, no Django: `annotation.services.queue` loads each caption's votes per level into
`CaptionStats` and asks for an ordered shortlist of captions; `bench/adaptive_rating.py` simulates raters
against the same functions.

- **Uniform** (`uniform_order`): the captions with the fewest votes first (ties by position), so every
  caption gets rated about equally often: what a contest without adaptivity does.
- **Adaptive** (`adaptive_order`): KL-LUCB (Kaufmann & Kalyanakrishnan, "Information complexity in bandit
  subset selection", COLT 2013), the top-k identification rule of the LUCB family; NEXT (Jamieson et al.,
  NeurIPS 2015), which runs the New Yorker caption contest, samples with KL-UCB bounds (the archive's
  `*_KLUCB` tables). Each caption's votes are scores on the scale, 1 for the worst level to L for the best,
  mapped to [0, 1]; a caption's upper and lower confidence bounds are the KL-divergence bounds of a
  variable on [0, 1] (valid for any distribution on [0, 1], not only Bernoulli). Let J be the current top
  k by mean and c the midpoint between the k-th and (k+1)-th means. LUCB samples the caption of J whose
  lower bound dips furthest below the others and the caption outside J whose upper bound reaches furthest
  above J; here that is one ordering, by how far a caption's interval crosses c (c − LCB inside J,
  UCB − c outside), so a participant who already rated the first choice gets the next one. When no
  interval crosses c, with intervals that hold for every caption at once (`top_k_identified`), J is the
  top k with probability at least 1 − δ; sampling goes on by the same order, narrowing the closest calls.

Cost: every caption's KL bound is a few Newton steps of vector arithmetic, ~5–15 ms for 10,000 captions
on a loaded 2-core machine; too much for every request, so the live queue keeps a `SamplerState`, which
recomputes all of them now and then (`refresh`) and, per choice, picks from the kept priorities and
updates the chosen caption's alone (`lease`): well under a millisecond per choice at 10,000 captions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

UNIFORM = "uniform"
ADAPTIVE = "adaptive"
POLICIES = (UNIFORM, ADAPTIVE)
_NEWTON_STEPS = 12
_EPS = 1e-12


@dataclass(frozen=True)
class AdaptiveConfig:
    """Settings of the adaptive (KL-LUCB) caption sampler."""

    top_k: int = field(
        default=10,
        metadata={"help": "How many of the best captions to find (the contest publishes its top 10)."},
    )
    delta: float = field(
        default=0.1,
        metadata={
            "help": "Confidence: when every interval is clear of the boundary, the current top k is the true "
            "top k with probability at least 1 − delta."
        },
    )
    prior_votes: float = field(
        default=1.0,
        metadata={
            "help": "Pseudo-votes at `prior_mean` added to every caption, so a caption without votes has a "
            "finite mean and is tried early rather than ranked first forever."
        },
    )
    prior_mean: float | None = field(
        default=None,
        metadata={"help": "The prior's score (1 = worst level); None for the middle of the scale."},
    )

    def __post_init__(self) -> None:
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 1:
            raise ValueError(f"top_k must be a whole number of at least 1, not {self.top_k!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must lie strictly between 0 and 1, not {self.delta!r}")
        if not 0 <= self.prior_votes < math.inf:
            raise ValueError(f"prior_votes must be 0 or more, not {self.prior_votes!r}")

    @classmethod
    def help(cls) -> dict[str, str]:
        """Each setting's help text, by name."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


@dataclass
class CaptionStats:
    """Votes of each caption: `votes[i]` how many, `total[i]` the sum of their scores (1..`levels`).

    Arrays, so that choosing among 10,000 captions is vector arithmetic. `add` records votes in place.
    """

    votes: np.ndarray
    total: np.ndarray
    levels: int

    @classmethod
    def from_counts(cls, counts: np.ndarray | Sequence[Sequence[int]]) -> CaptionStats:
        """From a (captions × levels) table of vote counts, worst level first."""
        table = np.asarray(counts, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] < 2:
            raise ValueError("counts must be a table of captions × levels, with at least two levels")
        if (table < 0).any():
            raise ValueError("vote counts must not be negative")
        values = np.arange(1, table.shape[1] + 1, dtype=np.float64)
        return cls(votes=table.sum(axis=1), total=table @ values, levels=table.shape[1])

    @classmethod
    def empty(cls, *, captions: int, levels: int) -> CaptionStats:
        return cls(votes=np.zeros(captions), total=np.zeros(captions), levels=levels)

    def __len__(self) -> int:
        return len(self.votes)

    def add(self, index: np.ndarray | int, score: np.ndarray | float, weight: float = 1.0) -> None:
        """Record votes: caption `index` got `score` (1..levels), `weight` times (indexes may repeat)."""
        np.add.at(self.votes, index, weight)
        np.add.at(self.total, index, np.asarray(score, dtype=np.float64) * weight)

    def means(self) -> np.ndarray:
        """Each caption's mean score (NaN without votes)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.total / self.votes


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL divergence between Bernoulli(p) and Bernoulli(q), elementwise."""
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def kl_upper(p: np.ndarray, n: np.ndarray, beta: float) -> np.ndarray:
    """The largest q ≥ p with n·KL(p, q) ≤ beta, elementwise.

    Newton's method on q ↦ KL(p, q) − beta/n, which is convex and increasing on [p, 1), started from
    Hoeffding's bound p + √(beta / 2n) (at or above the root, by Pinsker), so it descends to the root
    without overshooting; a few steps reach 1e-6 on [0, 1]."""
    p = np.clip(p, _EPS, 1 - _EPS)
    target = beta / n
    q = np.minimum(p + np.sqrt(target / 2), 1 - _EPS)
    q = np.maximum(q, p)
    for _ in range(_NEWTON_STEPS):
        excess = _kl(p, q) - target
        slope = (q - p) / (q * (1 - q))
        step = np.where(slope > 0, excess / np.where(slope > 0, slope, 1.0), 0.0)
        q = np.clip(q - np.maximum(step, 0.0), p, 1 - _EPS)
    return q


def kl_lower(p: np.ndarray, n: np.ndarray, beta: float) -> np.ndarray:
    """The smallest q ≤ p with n·KL(p, q) ≤ beta, elementwise."""
    return 1 - kl_upper(1 - p, n, beta)


def kl_upper_one(p: float, n: float, beta: float) -> float:
    """`kl_upper` of one caption, in plain floats (a numpy call per step costs more than the arithmetic)."""
    p = min(max(p, _EPS), 1 - _EPS)
    target = beta / n
    q = max(min(p + math.sqrt(target / 2), 1 - _EPS), p)
    for _ in range(_NEWTON_STEPS):
        slope = (q - p) / (q * (1 - q))
        if slope <= 0:
            break
        excess = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q)) - target
        q = min(max(q - max(excess / slope, 0.0), p), 1 - _EPS)
    return q


def exploration_rate(*, captions: int, votes: float, delta: float) -> float:
    """β(t, δ) of the confidence bounds: a log-log growth in the votes so far, and a union over `captions`.

    The stopping rule (`top_k_identified`) takes the union over every caption, so that "identified" holds
    with probability 1 − δ for the whole contest. The sampling rule uses one caption's rate (`captions=1`),
    KL-LUCB's practical choice: the union makes every interval wider by the same factor and mostly spends
    votes on captions already far from the top (precision@10 after 100 votes per caption of a 5,770-caption
    contest: 0.55 with the union, 0.85 without; see `bench/adaptive_rating.py`)."""
    return math.log(max(captions, 1) * (1 + math.log1p(votes)) / delta)


def _normalized(stats: CaptionStats, config: AdaptiveConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each caption's mean mapped to [0, 1] with the prior's pseudo-votes, and its vote count with them."""
    prior = config.prior_mean if config.prior_mean is not None else (1 + stats.levels) / 2
    n = stats.votes + config.prior_votes
    safe_n = np.where(n > 0, n, 1.0)
    mean = np.where(n > 0, (stats.total + config.prior_votes * prior) / safe_n, prior)
    return (mean - 1) / (stats.levels - 1), np.maximum(n, _EPS)


def _split(p: np.ndarray, k: int, votes: np.ndarray) -> tuple[np.ndarray, float]:
    """The current top k (a boolean mask) and the boundary between the k-th and (k+1)-th means.

    Among captions with equal means the less voted go into the top k: before any votes every caption ties,
    and LUCB then tries the widest intervals first instead of one arbitrary caption over and over."""
    top = np.zeros(len(p), dtype=bool)
    if k >= len(p):
        top[:] = True
        return top, -math.inf
    order = np.lexsort((votes, -p))  # best mean first, the less voted first among equal means
    top[order[:k]] = True
    return top, (p[order[k - 1]] + p[order[k]]) / 2


def adaptive_priority(stats: CaptionStats, config: AdaptiveConfig, *, union: bool = False) -> np.ndarray:
    """How far each caption's confidence interval crosses the top-k boundary (positive: undecided); with
    `union`, intervals valid for all captions at once (the stopping rule's, see `exploration_rate`)."""
    p, n = _normalized(stats, config)
    beta = exploration_rate(captions=len(p) if union else 1, votes=float(stats.votes.sum()), delta=config.delta)
    top, boundary = _split(p, config.top_k, stats.votes)
    priority = np.empty(len(p))
    inside = np.flatnonzero(top)
    outside = np.flatnonzero(~top)
    priority[inside] = boundary - kl_lower(p[inside], n[inside], beta)
    priority[outside] = kl_upper(p[outside], n[outside], beta) - boundary
    return priority


class SamplerState:
    """A policy's view of one contest, kept between choices so that a choice costs O(limit), not O(captions).

    `refresh` recomputes every caption's priority from `stats` (vector work over all captions: a few ms at
    10,000). `lease(index)` records that the caption was just handed out: a provisional vote at its current
    mean (its interval narrows, its mean stays), and only its priority is recomputed against the boundary
    and β of the last refresh. So raters asking between two refreshes spread over the undecided captions
    instead of all getting the same one. The provisional votes are dropped at the next refresh, which
    reads the real ones.
    """

    def __init__(self, policy: str, stats: CaptionStats, config: AdaptiveConfig) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown sampling policy {policy!r}; expected one of {', '.join(POLICIES)}")
        self.policy, self.config = policy, config
        self._top_first = True
        self.refresh(stats)

    def refresh(self, stats: CaptionStats) -> None:
        self.stats = CaptionStats(votes=stats.votes.copy(), total=stats.total.copy(), levels=stats.levels)
        if self.policy == UNIFORM or self.config.top_k >= len(stats):
            self.priority = -self.stats.votes.copy()
            self._top, self._boundary, self._beta = None, 0.0, 0.0
            return
        p, _ = _normalized(self.stats, self.config)
        self._beta = exploration_rate(captions=1, votes=float(self.stats.votes.sum()), delta=self.config.delta)
        self._top, self._boundary = _split(p, self.config.top_k, self.stats.votes)
        self.priority = adaptive_priority(self.stats, self.config)

    def lease(self, index: int) -> None:
        """Count a provisional vote for caption `index` at its current mean (see the class)."""
        stats = self.stats
        prior = self.config.prior_mean if self.config.prior_mean is not None else (1 + stats.levels) / 2
        votes, total = float(stats.votes[index]), float(stats.total[index])
        mean = total / votes if votes > 0 else prior
        stats.votes[index], stats.total[index] = votes + 1, total + mean
        if self._top is not None:  # LUCB pairs a caption of the top k with one of the rest: take turns
            self._top_first = not bool(self._top[index])
        if self._top is None:
            self.priority[index] = -(votes + 1)
            return
        n = votes + 1 + self.config.prior_votes
        p = ((total + mean + self.config.prior_votes * prior) / n - 1) / (stats.levels - 1)
        if self._top[index]:
            self.priority[index] = self._boundary - (1 - kl_upper_one(1 - p, n, self._beta))
        else:
            self.priority[index] = kl_upper_one(p, n, self._beta) - self._boundary

    def order(self, *, available: np.ndarray | None = None, limit: int = 16) -> np.ndarray:
        """Up to `limit` available captions, the policy's first choice first."""
        return shortlist(
            self.priority, self.stats.votes, available=available, limit=limit, top=self._top, top_first=self._top_first
        )


def top_k_identified(stats: CaptionStats, config: AdaptiveConfig) -> bool:
    """Whether the current top k is the true one with probability ≥ 1 − delta (no interval crosses)."""
    if config.top_k >= len(stats):
        return True
    return bool((adaptive_priority(stats, config, union=True) <= 0).all())


def current_top(stats: CaptionStats, k: int) -> np.ndarray:
    """The indexes of the k captions with the highest mean (captions without votes last), best first."""
    means = np.nan_to_num(stats.means(), nan=-math.inf)
    k = min(k, len(means))
    best = np.argpartition(-means, k - 1)[:k] if k < len(means) else np.arange(len(means))
    return best[np.lexsort((best, -means[best]))]


def _available_mask(size: int, available: np.ndarray | None) -> np.ndarray:
    if available is None:
        return np.ones(size, dtype=bool)
    mask = np.asarray(available, dtype=bool)
    if mask.shape != (size,):
        raise ValueError(f"available must be one flag per caption ({size}), not shape {mask.shape}")
    return mask


def uniform_order(stats: CaptionStats, *, available: np.ndarray | None = None, limit: int = 16) -> np.ndarray:
    """Up to `limit` available captions, fewest votes first (ties by index)."""
    mask = _available_mask(len(stats), available)
    candidates = np.flatnonzero(mask)
    if len(candidates) > limit:
        votes = stats.votes[candidates]
        keep = np.argpartition(votes, limit - 1)[:limit]
        candidates = candidates[keep]
    return candidates[np.lexsort((candidates, stats.votes[candidates]))]


def shortlist(
    priority: np.ndarray,
    votes: np.ndarray,
    *,
    available: np.ndarray | None = None,
    limit: int = 16,
    top: np.ndarray | None = None,
    top_first: bool | None = None,
) -> np.ndarray:
    """Up to `limit` available captions by priority, highest first; ties to the least voted, then index.

    With `top` (the current top k, a mask), LUCB's pairing: the list alternates between the captions of the
    top k and the others, each side by priority, starting with the top k's side when `top_first` (None:
    the side whose first caption has the higher priority)."""
    mask = _available_mask(len(priority), available)

    def best(candidates: np.ndarray) -> np.ndarray:
        if len(candidates) > limit:
            keep = np.argpartition(-priority[candidates], limit - 1)[:limit]
            candidates = candidates[keep]
        return candidates[np.lexsort((candidates, votes[candidates], -priority[candidates]))]

    if top is None:
        return best(np.flatnonzero(mask))
    inside, outside = best(np.flatnonzero(mask & top)), best(np.flatnonzero(mask & ~top))
    if top_first is None:
        top_first = bool(len(inside)) and (not len(outside) or priority[inside[0]] >= priority[outside[0]])
    first, second = (inside, outside) if top_first else (outside, inside)
    merged = [int(c) for pair in zip(first, second, strict=False) for c in pair]
    shorter = min(len(first), len(second))
    merged += [int(c) for c in first[shorter:]] + [int(c) for c in second[shorter:]]
    return np.array(merged[:limit], dtype=np.int64)


def adaptive_order(
    stats: CaptionStats, config: AdaptiveConfig, *, available: np.ndarray | None = None, limit: int = 16
) -> np.ndarray:
    """Up to `limit` available captions, the most undecided first (see the module): the first is
    KL-LUCB's choice among the available ones. Ties (say, captions without votes) go to the least voted."""
    if config.top_k >= len(stats):  # every caption is in the top k: nothing to tell apart
        return uniform_order(stats, available=available, limit=limit)
    p, _ = _normalized(stats, config)
    top, _ = _split(p, config.top_k, stats.votes)
    return shortlist(adaptive_priority(stats, config), stats.votes, available=available, limit=limit, top=top)


def caption_order(
    policy: str,
    stats: CaptionStats,
    config: AdaptiveConfig,
    *,
    available: np.ndarray | None = None,
    limit: int = 16,
) -> np.ndarray:
    """The shortlist of `policy` (`uniform` or `adaptive`), best choice first."""
    if policy == UNIFORM:
        return uniform_order(stats, available=available, limit=limit)
    if policy == ADAPTIVE:
        return adaptive_order(stats, config, available=available, limit=limit)
    raise ValueError(f"unknown sampling policy {policy!r}; expected one of {', '.join(POLICIES)}")
