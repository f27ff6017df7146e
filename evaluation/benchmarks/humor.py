"""Humor: a model's cartoon captions against the top human captions, by pairwise judgment.

Win-rate: each (model caption, human caption) pair is judged twice, once in each order, so a judge that prefers
the first (or second) position gains nothing; a pair won in one order and lost in the other is a tie (half a win).
Judgments come from people (a pairwise project) or a judge model (``judge_fn(first, second) -> "A" | "B" |
"tie"``), or are given.

Ratings: Bradley-Terry strengths (P(i beats j) = p_i / (p_i + p_j)) fitted with Hunter's MM algorithm (2004) on
all pairwise outcomes between players (models and "human"), ties counting half a win to each side; reported as
log-strengths centred on zero, with percentile bootstrap confidence intervals (resampling the comparisons). An
Elo rating over the same comparisons is there for those who want it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Comparison:
    """One judged pair: ``winner`` is "a", "b" or "tie"."""

    a: str
    b: str
    winner: str

    def __post_init__(self):
        if self.winner not in ("a", "b", "tie"):
            raise ValueError(f"winner must be 'a', 'b' or 'tie', not {self.winner!r}")


@dataclass
class HumorConfig:
    """Rating options."""

    n_bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for the confidence intervals."})
    confidence: float = field(default=0.95, metadata={"help": "Confidence level of the intervals."})
    seed: int = field(default=0, metadata={"help": "Seed of the bootstrap."})
    max_iter: int = field(default=1000, metadata={"help": "MM iterations at most."})
    tol: float = field(default=1e-9, metadata={"help": "Stop when no strength moves more than this (relative)."})
    prior_wins: float = field(
        default=0.0,
        metadata={"help": "Pseudo-wins each player gets against every other (0: plain maximum likelihood)."},
    )

    def __post_init__(self):
        if not 0 < self.confidence < 1:
            raise ValueError("confidence must be between 0 and 1")


@dataclass
class WinRate:
    win_rate: float  # model wins + half its ties, over pairs
    wins: int
    ties: int
    losses: int
    n_pairs: int
    position_consistency: float  # share of pairs where both orders agree


@dataclass
class Rating:
    player: str
    strength: float  # centred log-strength
    low: float
    high: float


def pair_outcome(first_order: str, swapped_order: str) -> float:
    """The model's score for one pair from two judgments, each "A" (first shown wins), "B" or "tie".

    In the first judgment the model's caption is shown first (A); in the swapped one it is shown second (B).
    """

    def model_score(verdict: str, model_is: str) -> float:
        verdict = verdict.strip().upper()
        if verdict not in ("A", "B", "TIE"):
            raise ValueError(f"a judgment is 'A', 'B' or 'tie', not {verdict!r}")
        return 0.5 if verdict == "TIE" else float(verdict == model_is)

    return (model_score(first_order, "A") + model_score(swapped_order, "B")) / 2


def win_rate(judgments: Sequence[tuple[str, str]]) -> WinRate:
    """Win-rate from (model-first verdict, model-second verdict) per pair."""
    if not judgments:
        raise ValueError("no judgments")
    scores = [pair_outcome(first, second) for first, second in judgments]
    wins = sum(s == 1.0 for s in scores)
    losses = sum(s == 0.0 for s in scores)
    consistent = sum(s in (0.0, 1.0) or (f.strip().upper() == s2.strip().upper() == "TIE") for s, (f, s2) in
                     zip(scores, judgments, strict=True))  # fmt: skip
    return WinRate(
        win_rate=sum(scores) / len(scores),
        wins=wins,
        ties=len(scores) - wins - losses,
        losses=losses,
        n_pairs=len(scores),
        position_consistency=consistent / len(scores),
    )


def judge_pairs(
    model_captions: Sequence[str], human_captions: Sequence[str], judge_fn: Callable[[str, str], str]
) -> list[tuple[str, str]]:
    """Ask a judge about each (model, human) pair in both orders."""
    return [(judge_fn(m, h), judge_fn(h, m)) for m, h in zip(model_captions, human_captions, strict=True)]


def comparisons_from_win_rate(model: str, judgments: Sequence[tuple[str, str]], human: str = "human"):
    """Both judgments of each pair as comparisons between ``model`` and ``human`` (for the ratings)."""
    out = []
    for first, second in judgments:
        for verdict, model_side in ((first, "a"), (second, "b")):
            verdict = verdict.strip().upper()
            if verdict == "TIE":
                out.append(Comparison(model, human, "tie"))
            else:
                model_won = (verdict == "A") == (model_side == "a")
                out.append(Comparison(model, human, "a" if model_won else "b"))
    return out


def bradley_terry(comparisons: Sequence[Comparison], config: HumorConfig | None = None) -> dict[str, float]:
    """Bradley-Terry log-strengths (centred: mean 0) by the MM algorithm."""
    config = config or HumorConfig()
    players = sorted({c.a for c in comparisons} | {c.b for c in comparisons})
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    wins = [0.0] * n
    games: dict[tuple[int, int], float] = {}
    for c in comparisons:
        i, j = index[c.a], index[c.b]
        if i == j:
            continue
        wins[i] += 1.0 if c.winner == "a" else 0.5 if c.winner == "tie" else 0.0
        wins[j] += 1.0 if c.winner == "b" else 0.5 if c.winner == "tie" else 0.0
        key = (min(i, j), max(i, j))
        games[key] = games.get(key, 0.0) + 1.0
    if config.prior_wins:
        for i in range(n):
            for j in range(i + 1, n):
                games[(i, j)] = games.get((i, j), 0.0) + 2 * config.prior_wins
                wins[i] += config.prior_wins
                wins[j] += config.prior_wins
    p = [1.0] * n
    for _ in range(config.max_iter):
        denominators = [0.0] * n
        for (i, j), n_ij in games.items():
            share = n_ij / (p[i] + p[j])
            denominators[i] += share
            denominators[j] += share
        new = [wins[i] / denominators[i] if denominators[i] else p[i] for i in range(n)]
        # A player who never wins has strength 0 (log -inf); floor it so the ratings stay finite.
        new = [max(v, 1e-12) for v in new]
        geometric = math.exp(sum(math.log(v) for v in new) / n)
        new = [v / geometric for v in new]
        moved = max(abs(a - b) / b for a, b in zip(new, p, strict=True))
        p = new
        if moved < config.tol:
            break
    logs = [math.log(v) for v in p]
    mean = sum(logs) / n
    return {player: logs[index[player]] - mean for player in players}


def bradley_terry_ratings(comparisons: Sequence[Comparison], config: HumorConfig | None = None) -> list[Rating]:
    """Bradley-Terry log-strengths with percentile bootstrap intervals, strongest first."""
    config = config or HumorConfig()
    point = bradley_terry(comparisons, config)
    rng = random.Random(config.seed)
    samples: dict[str, list[float]] = {player: [] for player in point}
    for _ in range(config.n_bootstrap):
        resample = [comparisons[rng.randrange(len(comparisons))] for _ in comparisons]
        fitted = bradley_terry(resample, config)
        for player in point:
            if player in fitted:
                samples[player].append(fitted[player])
    alpha = (1 - config.confidence) / 2
    ratings = []
    for player, strength in point.items():
        values = sorted(samples[player])
        if values:
            low = values[int(math.floor(alpha * (len(values) - 1)))]
            high = values[int(math.ceil((1 - alpha) * (len(values) - 1)))]
        else:
            low = high = strength
        ratings.append(Rating(player, strength, low, high))
    return sorted(ratings, key=lambda r: -r.strength)


def elo(comparisons: Sequence[Comparison], *, k: float = 32.0, start: float = 1000.0) -> dict[str, float]:
    """Sequential Elo over the comparisons in the order given (optional: order-dependent, unlike Bradley-Terry)."""
    ratings: dict[str, float] = {}
    for c in comparisons:
        ra, rb = ratings.setdefault(c.a, start), ratings.setdefault(c.b, start)
        expected_a = 1 / (1 + 10 ** ((rb - ra) / 400))
        score_a = 1.0 if c.winner == "a" else 0.5 if c.winner == "tie" else 0.0
        ratings[c.a] = ra + k * (score_a - expected_a)
        ratings[c.b] = rb - k * (score_a - expected_a)
    return ratings


# ------------------------------------------------------------------------------------------------ judge model

JUDGE_PROMPT_VERSION = "humor-v1"
# What a judge model reads for one ordered pair; str.format(contest description, caption A, caption B). A new
# wording gets a new constant and version, never an edit of this one.
JUDGE_PROMPT_V1 = (
    "You judge a cartoon caption contest. The cartoon: {0}\n"
    "Caption A: {1}\n"
    "Caption B: {2}\n"
    "Which caption is funnier? Answer with one letter, A or B."
)
JUDGE_PROMPTS: dict[str, str] = {JUDGE_PROMPT_VERSION: JUDGE_PROMPT_V1}


def parse_verdict(reply: str) -> str | None:
    """ "A", "B" or None from a judge's reply: its first word that is exactly A or B (any case, punctuation off)."""
    for word in reply.replace("\n", " ").split(" "):
        word = word.strip(" .,:;!?\"'()*").upper()
        if word in ("A", "B"):
            return word
    return None


def verdicts_in_both_orders(
    pairs: Sequence[tuple[str, str, str]],
    replies_of: Callable[[list[str]], list[str]],
    version: str = JUDGE_PROMPT_VERSION,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
    """(model-first, model-second) verdicts per (description, model caption, human caption) pair, the judge's
    replies in the same shape, and how many replies named neither caption (read as a tie)."""
    template = JUDGE_PROMPTS[version]
    prompts = []
    for description, model, human in pairs:
        prompts += [template.format(description, model, human), template.format(description, human, model)]
    replies = replies_of(prompts)
    verdicts = [parse_verdict(reply) for reply in replies]
    unparsed = sum(v is None for v in verdicts)
    read = ["tie" if v is None else v for v in verdicts]
    judgments = [(read[i], read[i + 1]) for i in range(0, len(read), 2)]
    return judgments, [(replies[i], replies[i + 1]) for i in range(0, len(replies), 2)], unparsed
