"""Adaptive caption sampling against uniform, in simulation: raters with a real contest's caption means.

    .venv/bin/python bench/adaptive_rating.py                                  # contest 660, 10 runs each
    .venv/bin/python bench/adaptive_rating.py --contest ../shared/data/caption-contest/691_summary_KLUCB.first2000.csv
    .venv/bin/python bench/adaptive_rating.py --runs 3 --queue-captions 10000  # also time the live next task
    .venv/bin/python bench/adaptive_rating.py --queue-only --queue-captions 10000

**The contest.** The table's captions (the archive's top 2,000, with their unfunny / somewhat / funny
counts) keep their observed vote shares as their true ones. The captions the file leaves out (a contest
has as many as its largest `target_id` + 1) get means from a logit-normal fitted to the ranks of the ones
given — logit((mean − 1) / 2) is linear in the normal quantile of the rank — and level shares from a line
fitted to the given captions' somewhat-funny share against their mean. A simulated rater shown caption i
answers level k with caption i's share of k.

**What is measured**, per policy of `annotation.sampling` (uniform: least-rated first; adaptive: KL-LUCB for
the top k), over `--runs` seeds:

- `votes_to_identify`: votes until the stopping rule of `sampling.top_k_identified` (every caption's
  KL confidence interval, at δ = `--delta`, clear of the boundary between the current top k and the rest)
  says the top k is found: "identified with 1 − δ confidence" (90% by default). The same rule stops both
  policies; `correct` says whether the set it stopped on is the true top k. Uniform's votes grow by 10% a
  round (so its figure is exact to 10%), adaptive's go out in rounds of 2% of the votes so far (at least
  200), spread over the captions whose intervals (the stopping rule's) cross the boundary, as concurrent
  raters would get them.
- `precision_at_k`: of the k captions with the highest observed mean after a fixed budget (`--budget`,
  default 100 votes per caption, about what a real contest collects), how many are truly top k. Adaptive
  samples here as the live queue does: by intervals at one caption's rate (`sampling.exploration_rate`).

One JSON line for the contest, one per run, one per policy (median and 90th percentile over runs), and a
summary last: `adaptive_to_uniform_votes` (the goal of issue 15: at most 0.5). With `--queue-captions N`,
lines `queue_next` time `assignment_next` (the live path, `_caption_take`) on a throwaway SQLite database
with a contest of N captions, each policy. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from annotation import sampling  # noqa: E402 — after the repository is on the path

DEFAULT_CONTEST = REPO.parent / "shared" / "data" / "caption-contest" / "660_summary_KLUCB.first2000.csv"
LEVEL_VALUES = np.array([1.0, 2.0, 3.0])


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def contest_truth(path: Path, *, captions: int | None) -> tuple[np.ndarray, dict]:
    """True level shares (unfunny, somewhat, funny) per caption, best caption first; and how they were fitted."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = np.array([[float(r["unfunny"]), float(r["somewhat_funny"]), float(r["funny"])] for r in rows])
    counts = counts[counts.sum(axis=1) > 0]
    shares = counts / counts.sum(axis=1, keepdims=True)
    means = shares @ LEVEL_VALUES
    order = np.argsort(-means)
    shares, means = shares[order], means[order]
    ids = [int(float(r["target_id"])) for r in rows if r.get("target_id", "").strip()]
    total = captions or max(len(shares), (max(ids) + 1) if ids else len(shares))
    given = len(shares)
    normal = statistics.NormalDist()
    z = np.array([normal.inv_cdf(1 - (rank - 0.5) / total) for rank in range(1, total + 1)])
    y = np.log((means - 1) / 2 / (1 - (means - 1) / 2))
    slope, intercept = np.polyfit(z[:given], y, 1)
    somewhat_slope, somewhat_intercept = np.polyfit(means, shares[:, 1], 1)
    if total > given:
        tail_z = z[given:]
        tail_mean = 1 + 2 / (1 + np.exp(-(intercept + slope * tail_z)))
        tail_mean = np.minimum(tail_mean, means[-1])
        somewhat = np.clip(somewhat_intercept + somewhat_slope * tail_mean, 0.0, 1.0)
        funny = np.clip((tail_mean - 1 - somewhat) / 2, 0.0, 1.0)
        somewhat = np.clip(tail_mean - 1 - 2 * funny, 0.0, 1.0)
        unfunny = np.clip(1 - somewhat - funny, 0.0, 1.0)
        tail = np.stack([unfunny, somewhat, funny], axis=1)
        tail = tail / tail.sum(axis=1, keepdims=True)
        shares = np.concatenate([shares, tail])
    truth_means = shares @ LEVEL_VALUES
    fit = {
        "contest": path.name,
        "captions": int(total),
        "captions_in_file": int(given),
        "logit_normal": {"intercept": round(float(intercept), 4), "slope": round(float(slope), 4)},
        "somewhat_share_line": {
            "intercept": round(float(somewhat_intercept), 4),
            "slope": round(float(somewhat_slope), 4),
        },
        "true_mean_quantiles": {
            q: round(float(np.quantile(truth_means, p)), 4)
            for q, p in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("max", 1.0))
        },
    }
    return shares, fit


def _votes(rng: np.random.Generator, shares: np.ndarray, per_caption: np.ndarray) -> np.ndarray:
    """Level counts of `per_caption[i]` new votes on each caption i (rows of `shares`)."""
    return rng.multinomial(per_caption.astype(np.int64), shares)


class Contest:
    """Votes so far of one simulated contest."""

    def __init__(self, shares: np.ndarray, rng: np.random.Generator) -> None:
        self.shares, self.rng = shares, rng
        self.counts = np.zeros_like(shares)

    def add(self, per_caption: np.ndarray) -> None:
        self.counts += _votes(self.rng, self.shares, per_caption)

    @property
    def stats(self) -> sampling.CaptionStats:
        return sampling.CaptionStats.from_counts(self.counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def _adaptive_round(contest: Contest, config: sampling.AdaptiveConfig, *, stop_when_identified: bool) -> bool:
    """One round of concurrent raters under KL-LUCB; False when the top k is identified (and asked to stop)."""
    stats = contest.stats
    if stop_when_identified and sampling.top_k_identified(stats, config):
        return False
    # Identifying: KL-LUCB proper, sampling by the intervals its stopping rule uses. A fixed budget: the
    # live queue's rule (one caption's rate, `sampling.exploration_rate`), which finds the top k sooner.
    priority = sampling.adaptive_priority(stats, config, union=stop_when_identified)
    undecided = np.flatnonzero(priority > 0)
    batch = max(200, int(0.02 * contest.total))
    if not len(undecided):
        undecided = sampling.shortlist(priority, stats.votes, limit=max(1, config.top_k * 2))
    # The batch goes to the most undecided captions first: each of the top `batch` gets one vote, and when
    # fewer are undecided they share it evenly (several raters each, none twice per rater).
    chosen = undecided[np.argsort(-priority[undecided])][:batch]
    per_caption = np.zeros(len(stats))
    per_caption[chosen] = batch // len(chosen)
    per_caption[chosen[: batch % len(chosen)]] += 1
    contest.add(per_caption)
    return True


def votes_to_identify(
    policy: str, shares: np.ndarray, config: sampling.AdaptiveConfig, *, seed: int, cap: float
) -> dict:
    rng = np.random.default_rng(seed)
    contest = Contest(shares, rng)
    contest.add(np.ones(len(shares)))  # every caption once: both policies start there
    true_top = set(np.argsort(-(shares @ LEVEL_VALUES))[: config.top_k].tolist())
    if policy == sampling.UNIFORM:
        per_caption = 1.0
        while not sampling.top_k_identified(contest.stats, config) and contest.total < cap:
            step = max(1.0, math.ceil(per_caption * 0.1))
            contest.add(np.full(len(shares), step))
            per_caption += step
    else:
        while contest.total < cap and _adaptive_round(contest, config, stop_when_identified=True):
            pass
    found = set(sampling.current_top(contest.stats, config.top_k).tolist())
    return {
        "votes_to_identify": contest.total,
        "stopped_by": "identified" if contest.total < cap else "cap",
        "correct": found == true_top,
    }


def precision_after(
    policy: str, shares: np.ndarray, config: sampling.AdaptiveConfig, *, seed: int, budget: int
) -> float:
    rng = np.random.default_rng(seed)
    contest = Contest(shares, rng)
    contest.add(np.ones(len(shares)))
    if policy == sampling.UNIFORM:
        per_caption = max(0, budget - contest.total) // len(shares)
        contest.add(np.full(len(shares), per_caption))
    else:
        while contest.total < budget:
            _adaptive_round(contest, config, stop_when_identified=False)
    true_top = set(np.argsort(-(shares @ LEVEL_VALUES))[: config.top_k].tolist())
    found = set(sampling.current_top(contest.stats, config.top_k).tolist())
    return len(found & true_top) / config.top_k


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.array(values, dtype=np.float64), q))


def queue_timing(*, captions: int, asks: int) -> None:
    """`assignment_next` on a throwaway SQLite database with one contest of `captions` captions (imported
    counts spread like a contest's), for each policy: the first call (which loads the adaptive sampler) and
    the median / p95 of the next `asks`, each followed by a skip so the next one chooses again."""
    with tempfile.TemporaryDirectory(prefix="loupe-bench-adaptive-") as tmp:
        os.environ["LOUPE_DATA_DIR"] = tmp
        os.environ["DJANGO_SETTINGS_MODULE"] = "loupe.settings.base"
        os.environ.setdefault("LOUPE_DEMO", "1")
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from annotation import services
        from annotation.models import Item, Response

        call_command("migrate", verbosity=0)
        owner = get_user_model().objects.create_user("bench-owner", is_staff=True)
        rng = np.random.default_rng(0)
        for policy in sampling.POLICIES:
            project = services.project_create(
                slug=f"contest-{policy}", kind="rating", created_by=owner, overlap=1000, rating_sampling=policy
            )
            item = Item.objects.create(project=project, external_id="cartoon", prompt="Caption this")
            levels = project.rating_levels
            imported = rng.multinomial(40, [0.6, 0.3, 0.1], size=captions)
            Response.objects.bulk_create(
                [
                    Response(
                        item=item,
                        position=k,
                        text=f"caption {k}",
                        meta={"rating_counts": {levels[j]: int(imported[k, j]) for j in range(3)}},
                    )
                    for k in range(captions)
                ],
                batch_size=2000,
            )
            rater = get_user_model().objects.create_user(f"bench-rater-{policy}")
            started = time.perf_counter()
            held = services.assignment_next(project=project, annotator=rater)
            first_ms = (time.perf_counter() - started) * 1000
            services.assignment_skip(assignment_id=held.pk, annotator=rater)
            timings = []
            for _ in range(asks):
                started = time.perf_counter()
                assignment = services.assignment_next(project=project, annotator=rater)
                timings.append((time.perf_counter() - started) * 1000)
                services.assignment_skip(assignment_id=assignment.pk, annotator=rater)
            _emit(
                {
                    "event": "queue_next",
                    "policy": policy,
                    "captions": captions,
                    "first_ms": round(first_ms, 2),
                    "median_ms": round(statistics.median(timings), 3),
                    "p95_ms": round(_quantile(timings, 0.95), 3),
                    "asks": asks,
                    "note": "adaptive reloads its sampler every LOUPE_RATING_SAMPLER_REFRESH_SECONDS (2 s): "
                    "first_ms is what that reload costs the request that does it",
                }
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contest", type=Path, default=DEFAULT_CONTEST, help="a caption-contest table (CSV)")
    parser.add_argument("--captions", type=int, help="captions in the contest (default: largest target_id + 1)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--delta", type=float, default=0.1, help="1 − confidence of the identification")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--budget", type=int, help="votes for precision@k (default: 100 per caption)")
    parser.add_argument("--cap", type=float, default=5e10, help="give up identifying after this many votes")
    parser.add_argument("--queue-captions", type=int, default=0, help="also time the live next task at N captions")
    parser.add_argument("--queue-asks", type=int, default=200)
    parser.add_argument("--queue-only", action="store_true", help="only the live next-task timing")
    args = parser.parse_args()
    if args.queue_only:
        queue_timing(captions=args.queue_captions or 10_000, asks=args.queue_asks)
        return

    shares, fit = contest_truth(args.contest, captions=args.captions)
    config = sampling.AdaptiveConfig(top_k=args.top_k, delta=args.delta)
    budget = args.budget or 100 * len(shares)
    _emit({"event": "contest", **fit, "top_k": args.top_k, "delta": args.delta, "budget": budget})
    results: dict[str, dict[str, list]] = {}
    for policy in sampling.POLICIES:
        runs = results.setdefault(policy, {"votes": [], "correct": [], "precision": [], "seconds": []})
        for seed in range(args.runs):
            started = time.perf_counter()
            identified = votes_to_identify(policy, shares, config, seed=seed, cap=args.cap)
            precision = precision_after(policy, shares, config, seed=1000 + seed, budget=budget)
            seconds = time.perf_counter() - started
            runs["votes"].append(identified["votes_to_identify"])
            runs["correct"].append(identified["correct"])
            runs["precision"].append(precision)
            runs["seconds"].append(seconds)
            _emit(
                {
                    "event": "run",
                    "policy": policy,
                    "seed": seed,
                    **identified,
                    "precision_at_k": precision,
                    "seconds": round(seconds, 2),
                }
            )
        _emit(
            {
                "event": "policy",
                "policy": policy,
                "votes_to_identify_median": int(statistics.median(runs["votes"])),
                "votes_to_identify_p90": int(_quantile(runs["votes"], 0.9)),
                "identified_correctly": sum(runs["correct"]) / len(runs["correct"]),
                "precision_at_k_mean": round(statistics.fmean(runs["precision"]), 3),
                "runs": args.runs,
            }
        )
    if args.queue_captions:
        queue_timing(captions=args.queue_captions, asks=args.queue_asks)
    uniform, adaptive = (statistics.median(results[p]["votes"]) for p in (sampling.UNIFORM, sampling.ADAPTIVE))
    _emit(
        {
            "event": "summary",
            "contest": fit["contest"],
            "captions": fit["captions"],
            "top_k": args.top_k,
            "confidence": 1 - args.delta,
            "uniform_votes_to_identify": int(uniform),
            "adaptive_votes_to_identify": int(adaptive),
            "adaptive_to_uniform_votes": round(adaptive / uniform, 4),
            "goal_at_most": 0.5,
            "budget": budget,
            "uniform_precision_at_k": round(statistics.fmean(results[sampling.UNIFORM]["precision"]), 3),
            "adaptive_precision_at_k": round(statistics.fmean(results[sampling.ADAPTIVE]["precision"]), 3),
        }
    )


if __name__ == "__main__":
    main()
