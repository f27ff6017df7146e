"""The labeler's pipeline: candidates → divide → questions → conquer → score → pairs, and the HA-DPO rewrite.

``label_answers`` is what a labeler job runs. It takes answers one by one (an iterable, so a caller can load
images lazily), works through them in chunks of ``LabelerConfig.batch_size`` answers (each step of a chunk is
one call to the backend, which batches it), and yields each answer's ``LabelledAnswer`` as soon as its chunk
is done, so the caller stores results as they come. Resuming: answers whose key is in ``done`` are skipped
(the caller passes the keys it already stored); a backend failure raises ``LabelerBackendError`` after every
finished answer has been yielded, so only the failed chunk is redone. Cancelling: stop iterating. Within a
chunk, the same question about the same item (two candidates both saying "There are two objects") is asked
once.

The rest is small and built on the same pieces: ``pairs_from_labelled`` (RLAIF-V pairs through
``annotation.pair_rules``), ``rewrite_answer`` (a corrected answer from the rejected claims or an annotator's
marked segments), ``candidates_sample`` (several answers per prompt from one model and one set of decoding
settings, RLAIF-V's deconfounded candidates) and ``LabelerScorer`` (the labeler's answer score in the reward
scorer shape of ``training.rewards``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation.labeler.backends import LabelerBackend
from annotation.labeler.claims import Claim, claims_parse, question_from_claim, question_parse, split_claims
from annotation.labeler.config import LabelerConfig
from annotation.labeler.prompts import PromptSet, prompt_set
from annotation.labeler.verdicts import YesNoQuestion, YesNoVerdict, answer_score
from annotation.pair_rules import AIScored, PairRow, Segment, changed_spans, pairs_from_ai_feedback


@dataclass(frozen=True)
class AnswerToLabel:
    """One answer to label: its key (a response id; what ``done`` holds), the item it answers (answers are
    paired within an item, and share questions about its image), the prompt, the answer, the image (a PIL
    image or None) and how pair rows refer to the image (a path)."""

    key: str
    item_key: str
    prompt: str
    answer: str
    image: Any = None
    image_ref: str | None = None


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim, the question asked about it, where each came from, and the labeler's verdict."""

    claim: Claim
    question: str
    verdict: YesNoVerdict
    question_source: str = "template"  # "template", "model" or "template-fallback"


@dataclass
class LabelledAnswer:
    """An answer's claims with their verdicts, its score, and how it was divided ("rules", "model" or
    "rules-fallback"): everything ``AIFeedback`` keeps for display and audit."""

    answer: AnswerToLabel
    claims: list[ClaimVerdict]
    score: float
    claims_source: str = "rules"

    @property
    def p_yes(self) -> list[float]:
        """P(yes) per claim, normalized over yes and no (what ``AIFeedback.p_yes`` stores)."""
        return [c.verdict.p_yes_normalized for c in self.claims]

    @property
    def rejected(self) -> list[ClaimVerdict]:
        return [c for c in self.claims if not c.verdict.accepted]

    def feedback_fields(self) -> dict[str, Any]:
        """The keyword arguments of ``ai_feedback_record`` this verdict fills (the caller adds the response,
        the labeler model's name and the prompt version): per claim its text, question, P(yes), where the
        verdict came from (logits, logprobs or parsed) and its character span in the answer (None where a
        model's claim is not found verbatim)."""
        return {
            "claims": [c.claim.text for c in self.claims],
            "questions": [c.question for c in self.claims],
            "p_yes": self.p_yes,
            "score": self.score,
            "sources": [c.verdict.source for c in self.claims],
            "claim_spans": [
                [c.claim.start, c.claim.end] if c.claim.start is not None and c.claim.end is not None else None
                for c in self.claims
            ],
        }

    def ai_scored(self) -> AIScored:
        return AIScored(
            item_key=self.answer.item_key,
            prompt=self.answer.prompt,
            image=self.answer.image_ref,
            text=self.answer.answer,
            score=self.score,
            n_claims=len(self.claims),
            n_rejected=len(self.rejected),
            response_key=self.answer.key,
        )


@dataclass
class LabelProgress:
    """Where a labelling run stands: answers labelled in this run, skipped as already done, questions asked
    of the backend (after de-duplication), and the total when the caller gave it."""

    labelled: int = 0
    skipped: int = 0
    questions: int = 0
    total: int | None = None


def yes_no_question(*, question: str, image: Any, prompts: PromptSet) -> YesNoQuestion:
    """What the labeler reads for ``question``: the version's conquer prompt around it, with the image."""
    return YesNoQuestion(text=prompts.conquer.format(question=question), image=image)


def _divide(
    chunk: Sequence[AnswerToLabel], *, backend: LabelerBackend, config: LabelerConfig, prompts: PromptSet
) -> list[tuple[list[Claim], str]]:
    """Claims of each answer and how they were found (at most ``max_claims`` each)."""
    if config.divide == "rules":
        return [(split_claims(a.answer)[: config.max_claims], "rules") for a in chunk]
    outputs = backend.generate(
        prompts=[prompts.divide.format(answer=a.answer) for a in chunk],
        images=None,
        max_new_tokens=config.max_new_tokens,
    )
    divided = []
    for answer, output in zip(chunk, outputs, strict=True):
        parsed = claims_parse(output, answer=answer.answer) if answer.answer.strip() else []
        claims, source = (parsed, "model") if parsed is not None else (split_claims(answer.answer), "rules-fallback")
        divided.append((claims[: config.max_claims], source))
    return divided


def _questions(
    claims: Sequence[Claim], *, backend: LabelerBackend, config: LabelerConfig, prompts: PromptSet
) -> list[tuple[str, str]]:
    """(question, source) per claim."""
    if config.questions == "template" or not claims:
        return [(question_from_claim(c.text), "template") for c in claims]
    outputs = backend.generate(
        prompts=[prompts.question.format(claim=c.text) for c in claims],
        images=None,
        max_new_tokens=min(config.max_new_tokens, 64),
    )
    asked = []
    for claim, output in zip(claims, outputs, strict=True):
        question = question_parse(output)
        asked.append((question, "model") if question else (question_from_claim(claim.text), "template-fallback"))
    return asked


def _label_chunk(
    chunk: Sequence[AnswerToLabel], *, backend: LabelerBackend, config: LabelerConfig, prompts: PromptSet
) -> tuple[list[LabelledAnswer], int]:
    """The chunk's answers labelled, and how many questions went to the backend."""
    divided = _divide(chunk, backend=backend, config=config, prompts=prompts)
    all_claims = [c for claims, _ in divided for c in claims]
    asked = iter(_questions(all_claims, backend=backend, config=config, prompts=prompts))
    # One backend question per distinct (item, question): every answer of an item shares its image.
    index: dict[tuple[str, str], int] = {}
    unique: list[YesNoQuestion] = []
    per_answer: list[list[tuple[Claim, str, str, int]]] = []
    for answer, (claims, _source) in zip(chunk, divided, strict=True):
        rows = []
        for claim in claims:
            question, question_source = next(asked)
            key = (answer.item_key, question)
            if key not in index:
                index[key] = len(unique)
                unique.append(yes_no_question(question=question, image=answer.image, prompts=prompts))
            rows.append((claim, question, question_source, index[key]))
        per_answer.append(rows)
    verdicts = backend.yes_probabilities(questions=unique) if unique else []
    if len(verdicts) != len(unique):
        raise RuntimeError(f"the backend answered {len(verdicts)} of {len(unique)} questions")
    labelled = []
    for answer, (_claims, source), rows in zip(chunk, divided, per_answer, strict=True):
        claim_verdicts = [
            ClaimVerdict(claim=claim, question=question, verdict=verdicts[k], question_source=question_source)
            for claim, question, question_source, k in rows
        ]
        score = answer_score([c.verdict for c in claim_verdicts], method=config.score)
        labelled.append(LabelledAnswer(answer=answer, claims=claim_verdicts, score=score, claims_source=source))
    return labelled, len(unique)


def label_answers(
    *,
    answers: Iterable[AnswerToLabel],
    backend: LabelerBackend,
    config: LabelerConfig | None = None,
    done: Collection[str] = (),
    progress: Callable[[LabelProgress], None] | None = None,
    total: int | None = None,
) -> Iterator[LabelledAnswer]:
    """Label every answer not in ``done`` (see the module docstring); ``progress`` is called after each chunk."""
    config = config or LabelerConfig()
    prompts = prompt_set(config.prompt_version)
    state = LabelProgress(total=total)
    chunk: list[AnswerToLabel] = []
    unreported = False  # skipped answers not yet reported

    def flush() -> Iterator[LabelledAnswer]:
        nonlocal unreported
        labelled, asked = _label_chunk(chunk, backend=backend, config=config, prompts=prompts)
        chunk.clear()
        state.questions += asked
        for result in labelled:
            state.labelled += 1
            yield result
        unreported = False
        if progress is not None:
            progress(state)

    for answer in answers:
        if answer.key in done:
            state.skipped += 1
            unreported = True
            continue
        chunk.append(answer)
        if len(chunk) >= config.batch_size:
            yield from flush()
    if chunk:
        yield from flush()
    elif unreported and progress is not None:
        progress(state)


def pairs_from_labelled(labelled: Iterable[LabelledAnswer], *, config: LabelerConfig | None = None) -> list[PairRow]:
    """RLAIF-V pairs (gap, at most N per prompt, length balancing) between answers of the same item."""
    config = config or LabelerConfig()
    return list(
        pairs_from_ai_feedback(
            (a.ai_scored() for a in labelled),
            min_gap=config.min_gap,
            max_pairs_per_prompt=config.max_pairs_per_prompt,
            length_balance=config.length_balance,
            seed=config.seed,
        )
    )


# ---------------------------------------------------------------------------------------------------
# Rewrite (HA-DPO)


@dataclass
class Rewrite:
    """A corrected answer the model wrote, and the changed character spans of the original and of it."""

    text: str
    original_spans: list[tuple[int, int]] = field(default_factory=list)
    rewrite_spans: list[tuple[int, int]] = field(default_factory=list)


_REWRITE_LABEL = re.compile(r"^\s*(?:corrected answer|answer)\s*:\s*", re.IGNORECASE)


def rewrite_answer(
    *,
    backend: LabelerBackend,
    prompt: str,
    answer: str,
    image: Any = None,
    rejected_claims: Sequence[str] = (),
    segments: Sequence[Segment] = (),
    config: LabelerConfig | None = None,
) -> Rewrite | None:
    """A corrected answer in the same style, from the claims the labeler rejected or the segments an
    annotator marked (one of the two); None when there is nothing to correct or the model wrote nothing new.

    Decoded greedily, so the same inputs give the same suggestion."""
    config = config or LabelerConfig()
    prompts = prompt_set(config.prompt_version)
    if segments:
        problems = "\n".join(f'- "{answer[start:end]}"' for start, end, _r, _t in sorted(segments))
        template = prompts.rewrite_segments
    elif rejected_claims:
        problems = "\n".join(f"- {claim}" for claim in rejected_claims)
        template = prompts.rewrite_claims
    else:
        return None
    output = backend.generate(
        prompts=[template.format(prompt=prompt, answer=answer, problems=problems)],
        images=[image],
        max_new_tokens=config.max_new_tokens,
    )[0]
    text = _REWRITE_LABEL.sub("", output).strip()
    if not text or text.split() == answer.split():
        return None
    original_spans, rewrite_spans = changed_spans(answer, text)
    return Rewrite(text=text, original_spans=original_spans, rewrite_spans=rewrite_spans)


# ---------------------------------------------------------------------------------------------------
# Candidates and the labeler as a reward scorer


def candidates_sample(
    *,
    backend: LabelerBackend,
    prompts: Sequence[str],
    images: Sequence[Any] | None,
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> list[list[str]]:
    """``n`` answers per prompt from one model with one set of decoding settings (RLAIF-V's deconfounded
    candidates: the answers then differ in content, not in style); the caller records ``backend.name`` and
    the settings with them."""
    if n < 1 or temperature <= 0:
        raise ValueError("candidates need n >= 1 and a positive temperature (n greedy answers would be equal)")
    texts = backend.generate(
        prompts=[p for p in prompts for _ in range(n)],
        images=[i for i in images for _ in range(n)] if images is not None else None,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
    )
    return [texts[k * n : (k + 1) * n] for k in range(len(prompts))]


class LabelerScorer:
    """The labeler's answer score as a reward source (``training.rewards.RewardScorer`` shape)."""

    def __init__(self, *, backend: LabelerBackend, config: LabelerConfig | None = None) -> None:
        self.backend = backend
        self.config = config or LabelerConfig()
        self.__name__ = f"labeler:{backend.name}"

    def __call__(
        self, *, prompts: Sequence[str], completions: Sequence[str], images: Sequence[list] | None
    ) -> list[float]:
        answers = [
            AnswerToLabel(
                key=str(k),
                item_key=str(k),
                prompt=prompt,
                answer=completion,
                image=images[k][0] if images is not None and images[k] else None,
            )
            for k, (prompt, completion) in enumerate(zip(prompts, completions, strict=True))
        ]
        return [a.score for a in label_answers(answers=answers, backend=self.backend, config=self.config)]
