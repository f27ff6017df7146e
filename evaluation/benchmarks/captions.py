"""Caption metrics: BLEU-1..4, ROUGE-L and METEOR, corpus and per caption, as coco-caption computes them.

Implementation: `pycocoevalcap` (the PyPI packaging of coco-caption, the MS-COCO caption evaluation code), with its
Java PTB tokenizer, its BLEU (corpus BLEU with the "closest" reference length), ROUGE-L (LCS F-measure with beta
1.2, averaged over captions) and METEOR 1.5 (the jar in the wheel). Why this one: SciCap and the captioning
papers Loupe's users compare against report coco-caption figures, and the usual implementations disagree on the
same captions (stack notes: ROUGE-L 0.8771 coco-caption vs 0.8787 rouge-score, BLEU-4 0.765 vs 0.745 sacrebleu vs
0.727 nltk), so "equal to the reference" has to mean one named implementation with its tokenisation. It needs
`java` on PATH (platform/setup.sh installs default-jre-headless for the tests where it is missing).

The JVMs start slowly (about a second each), so `CaptionScorer` keeps one METEOR process for its lifetime; use it
as a context manager, or call `close()`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CaptionMetricsConfig:
    """Which metrics to compute."""

    meteor: bool = field(default=True, metadata={"help": "Compute METEOR (starts a Java process)."})
    bleu_n: int = field(default=4, metadata={"help": "Highest BLEU order reported (BLEU-1 .. BLEU-n)."})

    def __post_init__(self):
        if not 1 <= self.bleu_n <= 4:
            raise ValueError("bleu_n must be 1-4")


@dataclass
class CaptionMetrics:
    corpus: dict[str, float]  # "BLEU-1" .. "BLEU-4", "ROUGE-L", "METEOR"
    per_caption: list[dict[str, float]]


def read_captions(path: str | Path) -> list[list[str]]:
    """Captions per item from a file: one caption per line, or JSON lines holding a list of strings or an object
    with "references" / "captions" (lists) or "caption" / "prediction" / "text" (one string)."""
    items = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped[0] in "[{":
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, list):
                items.append([str(c) for c in data])
                continue
            if isinstance(data, dict):
                for key in ("references", "captions"):
                    if isinstance(data.get(key), list):
                        items.append([str(c) for c in data[key]])
                        break
                else:
                    for key in ("caption", "prediction", "text"):
                        if isinstance(data.get(key), str):
                            items.append([data[key]])
                            break
                    else:
                        raise ValueError(f"{path}:{line_no}: no captions in this JSON line")
                continue
        items.append([line.rstrip("\n")])
    return items


class CaptionScorer:
    """coco-caption scorers with one long-lived METEOR process."""

    def __init__(self, config: CaptionMetricsConfig | None = None):
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.rouge.rouge import Rouge

        self.config = config or CaptionMetricsConfig()
        self._bleu = Bleu(4)
        self._rouge = Rouge()
        self._meteor = None
        if self.config.meteor:
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()

    def __enter__(self) -> CaptionScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._meteor is not None:
            meteor, self._meteor = self._meteor, None
            # pycocoevalcap's Meteor stops its JVM only in __del__; stop it now (its __del__ later is harmless).
            with meteor.lock:
                meteor.meteor_p.stdin.close()
                meteor.meteor_p.kill()
                meteor.meteor_p.wait()

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> CaptionMetrics:
        """Score ``predictions[i]`` against ``references[i]`` (one or more captions each)."""
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} reference sets")
        if not predictions:
            raise ValueError("no captions to score")
        if any(not refs for refs in references):
            raise ValueError("every prediction needs at least one reference")
        tokenizer = PTBTokenizer()
        gts = tokenizer.tokenize({i: [{"caption": r} for r in refs] for i, refs in enumerate(references)})
        res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
        bleu, bleu_each = self._bleu.compute_score(gts, res, verbose=0)
        rouge, rouge_each = self._rouge.compute_score(gts, res)
        corpus = {f"BLEU-{n}": float(bleu[n - 1]) for n in range(1, self.config.bleu_n + 1)}
        corpus["ROUGE-L"] = float(rouge)
        per = [
            {**{f"BLEU-{n}": float(bleu_each[n - 1][i]) for n in range(1, self.config.bleu_n + 1)},
             "ROUGE-L": float(rouge_each[i])}
            for i in range(len(predictions))
        ]  # fmt: skip
        if self._meteor is not None:
            meteor, meteor_each = self._meteor.compute_score(gts, res)
            corpus["METEOR"] = float(meteor)
            for i, value in enumerate(meteor_each):
                per[i]["METEOR"] = float(value)
        return CaptionMetrics(corpus=corpus, per_caption=per)


def caption_metrics(
    predictions: Sequence[str], references: Sequence[Sequence[str]], config: CaptionMetricsConfig | None = None
) -> CaptionMetrics:
    """One-off scoring (starts and stops its own METEOR process)."""
    with CaptionScorer(config) as scorer:
        return scorer.score(predictions, references)
