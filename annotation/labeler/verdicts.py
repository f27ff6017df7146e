"""What the labeler says about one yes/no question, and how claims' verdicts make an answer's score.

RLAIF-V's rule: a claim is accepted iff P(yes)+P(Yes) > P(no)+P(No) at the first answer token. Backends
read those masses from a local model's logits, from a server's top logprobs, or (servers that return no
logprobs) from the answer's text, and record which (``source``). ``p_yes_normalized`` = P(yes)/(P(yes)+P(no))
is what ``AIFeedback.p_yes`` stores: "accepted" is then exactly ``p > 0.5``, the rule the pair code applies
(``annotation.services.preference_pairs.CLAIM_ACCEPT_P_YES``).

Answer scores: ``"rejected"`` (RLAIF-V): minus the number of rejected claims; ``"mean_log_p_yes"``: the mean
of log P(yes) (normalized) over the claims, a finer score that separates answers with equal counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

YES_WORDS = ("yes", "Yes")
NO_WORDS = ("no", "No")
SOURCES = ("logits", "logprobs", "parsed")
SCORES = ("rejected", "mean_log_p_yes")
# log P(yes) of a claim the labeler is certain is false would be -inf; this floor keeps scores finite.
MIN_P_YES = 1e-6


@dataclass(frozen=True)
class YesNoQuestion:
    """A question for the labeler: the full prompt text it reads and the image it looks at (a PIL image, or
    None for a text-only question)."""

    text: str
    image: Any = None


@dataclass(frozen=True)
class YesNoVerdict:
    """The labeler's answer to one question: the probability masses of its yes and no tokens at the first
    answer token (summed over "yes"/"Yes" and over "no"/"No"), where they came from, and the answer text a
    server gave (``"parsed"`` verdicts)."""

    p_yes: float
    p_no: float
    source: str
    answer: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")

    @property
    def accepted(self) -> bool:
        """RLAIF-V's rule: the claim holds iff P(yes)+P(Yes) > P(no)+P(No)."""
        return self.p_yes > self.p_no

    @property
    def p_yes_normalized(self) -> float:
        """P(yes) among the two answers, in [0, 1]; 0.5 when the labeler put no mass on either."""
        total = self.p_yes + self.p_no
        return self.p_yes / total if total > 0 else 0.5


def answer_score(verdicts: Sequence[YesNoVerdict], *, method: str = "rejected") -> float:
    """An answer's score from its claims' verdicts (see the module docstring); 0 for an answer with no claim."""
    if method == "rejected":
        return -float(sum(1 for v in verdicts if not v.accepted))
    if method == "mean_log_p_yes":
        if not verdicts:
            return 0.0
        return sum(math.log(max(v.p_yes_normalized, MIN_P_YES)) for v in verdicts) / len(verdicts)
    raise ValueError(f"score must be one of {SCORES}, not {method!r}")


def _word(token: str) -> str:
    """A token's text without the space markers tokenizers and servers put before a word (" ", "Ġ", "▁")."""
    return token.strip().lstrip("Ġ▁").strip()


def answer_word(token: str) -> str | None:
    """ "yes" or "no" when a first answer token opens one of those words ("Yes", " no", or a piece like "y"
    where a tokenizer starts "yes" with it, as the local backend counts ids), else None."""
    word = _word(token)
    if not word:
        return None
    if any(w.startswith(word) for w in YES_WORDS):
        return "yes"
    if any(w.startswith(word) for w in NO_WORDS):
        return "no"
    return None


def verdict_from_top_logprobs(top: Iterable[tuple[str, float]]) -> YesNoVerdict | None:
    """The verdict from a server's top logprobs of the first answer token, ``(token text, logprob)`` pairs;
    None when none of them opens a yes or no word (then the answer's text decides)."""
    p_yes = p_no = 0.0
    found = False
    for token, logprob in top:
        word = answer_word(token)
        if word == "yes":
            p_yes += math.exp(logprob)
        elif word == "no":
            p_no += math.exp(logprob)
        found = found or word is not None
    return YesNoVerdict(p_yes=p_yes, p_no=p_no, source="logprobs") if found else None


def verdict_from_text(answer: str) -> YesNoVerdict | None:
    """The verdict an answer's text states by its first word ("Yes, there is ..." → yes), as certainties;
    None when it starts with neither yes nor no."""
    first = re.match(r"\W*(\w+)", answer)
    word = first.group(1).lower() if first else ""
    if word not in ("yes", "no"):
        return None
    return YesNoVerdict(p_yes=float(word == "yes"), p_no=float(word == "no"), source="parsed", answer=answer)
