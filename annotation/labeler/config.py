"""The labeler's settings, as a dataclass whose fields carry help text (no torch: the web process validates a
job's settings with it before queueing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from annotation.labeler.prompts import prompt_set
from annotation.labeler.verdicts import SCORES

DIVIDE_MODES = ("rules", "model")
QUESTION_MODES = ("template", "model")


@dataclass
class LabelerConfig:
    """How the labeler divides, asks, scores and pairs (design.md §8; defaults are RLAIF-V's)."""

    divide: str = field(
        default="rules",
        metadata={
            "help": "How answers are split into claims: 'rules' (the deterministic sentence/clause splitter, "
            "offline) or 'model' (the labeler model is prompted; output that does not parse falls back to rules)."
        },
    )
    questions: str = field(
        default="template",
        metadata={
            "help": "How a claim becomes a yes/no question: 'template' or 'model' (prompted; output that is not "
            "a question falls back to the template)."
        },
    )
    prompt_version: str = field(default="v1", metadata={"help": "Version of the prompt texts (prompts.PROMPTS)."})
    score: str = field(
        default="rejected",
        metadata={
            "help": "Answer score: 'rejected' (minus the number of rejected claims, RLAIF-V) or "
            "'mean_log_p_yes' (mean log P(yes) over the claims)."
        },
    )
    batch_size: int = field(
        default=32, metadata={"help": "Questions sent to the backend together (one forward pass locally)."}
    )
    max_claims: int = field(
        default=24, metadata={"help": "At most this many claims per answer (the first ones); bounds the cost."}
    )
    max_new_tokens: int = field(
        default=256, metadata={"help": "Longest text the model writes when dividing, asking or rewriting."}
    )
    min_gap: float = field(default=1.0, metadata={"help": "Smallest score difference that makes a pair."})
    max_pairs_per_prompt: int = field(default=2, metadata={"help": "At most this many pairs per prompt."})
    length_balance: bool = field(
        default=True, metadata={"help": "Drop pairs so chosen answers are not simply the shorter ones (RLAIF-V)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the draw of pairs per prompt."})

    def __post_init__(self) -> None:
        if self.divide not in DIVIDE_MODES:
            raise ValueError(f"divide must be one of {DIVIDE_MODES}, not {self.divide!r}")
        if self.questions not in QUESTION_MODES:
            raise ValueError(f"questions must be one of {QUESTION_MODES}, not {self.questions!r}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, not {self.score!r}")
        prompt_set(self.prompt_version)  # raises on an unknown version
        for name in ("batch_size", "max_claims", "max_new_tokens", "max_pairs_per_prompt"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.min_gap <= 0:
            raise ValueError(f"min_gap must be positive, not {self.min_gap}")
