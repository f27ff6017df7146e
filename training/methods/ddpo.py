"""Dense DPO (DDPO) from RLHF-V: DPO where the tokens an annotator corrected weigh gamma times more.

RLHF-V (Yu et al., 2024, "RLHF-V: Towards Trustworthy MLLMs via Behavior Alignment from Fine-grained
Correctional Human Feedback", https://arxiv.org/abs/2312.00849) collects segment-level corrections of
hallucinated answers and trains with DPO on a gamma-weighted sequence log-probability, used for the policy
and the reference alike, inside the usual DPO loss
``-log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])``. Two forms exist:

- ``normalize="mean"``, the paper's formula (beta 0.5, gamma 5, Loupe's defaults), with gamma = 1 DPO on mean
  token log-probabilities:

    log pi(y|x) = (sum_{unchanged t} log p(y_t) + gamma * sum_{changed t} log p(y_t)) / (|unchanged| + gamma*|changed|)

- ``normalize="sum"``, what RLHF-V's released training run computes (Muffin ``compute_weighted_logp`` with
  ``dpo_use_average=False``, ``dpo_token_weight=1.1``, ``dpo_beta=0.1``): the numerator alone; with gamma = 1
  this is plain DPO.

With the policy equal to the reference the loss is ln 2 either way.

Which tokens are "changed": as RLHF-V's code does it, diff the token ids of the chosen and the rejected
sequence (``difflib.SequenceMatcher``), keep the matching blocks of at least 3 tokens, and mark every answer
token outside them, on both sides. Like RLHF-V, the diff sees the prompt too: an opening the answers share
continues the prompt's matching block, so a shared first word ("There" in "There is a red circle" vs "There
are two circles") stays unchanged, where a diff of the answers alone would find a match too short to count.
Two choices differ from RLHF-V's script and are deliberate: a token inserted on one side only (e.g. a
hallucinated object with no counterpart) is marked too, where RLHF-V marks only replaced stretches; and the
matcher runs without difflib's "autojunk" heuristic, which on sequences of 200+ tokens would ignore frequent
tokens (and every image placeholder token). When a side of a row carries explicit character spans
(``chosen_spans``, ``rejected_spans``: non-empty lists of ``[start, end]`` offsets into that answer's text, e.g.
what an annotator marked), those spans choose the changed tokens of that side instead of the diff. An empty or
missing list means "no spans were marked", not "nothing changed": pairs from pairwise, rating, ranking and AI
feedback carry ``[]`` on both sides and get their changed tokens from the diff.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from trl import DPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import use_adapter

from training.core import RunHooks, TrainResult, completion_token_logps, message_text, run_trainer
from training.methods.configs import DDPOConfig
from training.methods.dpo import make_preference_trainer

SPAN_COLUMNS = ("chosen_spans", "rejected_spans")
# Batch entries that are not model inputs.
NON_MODEL_KEYS = {"completion_mask", "changed_mask", "ref_chosen_logps", "ref_rejected_logps"}


# --------------------------------------------------------------------------------------------------------
# The loss


Normalize = Literal["mean", "sum"]


def weighted_sequence_logps(
    token_logps: torch.Tensor, token_weights: torch.Tensor, mask: torch.Tensor, *, normalize: Normalize = "mean"
) -> torch.Tensor:
    """Weighted mean (the paper) or sum (RLHF-V's released run) of the completion tokens' log-probs.

    token_logps: (N, T) log p of each token; token_weights: (N, T), 1 for unchanged and gamma for changed
    tokens; mask: (N, T), 1 on completion tokens. Returns (N,): sum(w * logp) over masked tokens, divided by
    sum(w) for ``"mean"``.
    """
    weights = token_weights * mask  # (N, T)
    weighted = (token_logps * weights).sum(dim=-1)  # (N,)
    if normalize == "sum":
        return weighted
    if normalize == "mean":
        return weighted / weights.sum(dim=-1).clamp(min=1e-8)  # (N,)
    raise ValueError(f"normalize must be 'mean' or 'sum', not {normalize!r}")


def ddpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss on weighted sequence log-probs (all inputs (B,), from ``weighted_sequence_logps``).

    Returns ``(losses, chosen_rewards, rejected_rewards)``, each (B,); the rewards are beta times the
    log-ratio to the reference, detached, for reporting.
    """
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))  # (B,)
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def dense_token_weights(changed_mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """1 for unchanged tokens, gamma for changed ones (same shape as ``changed_mask``)."""
    return 1.0 + (gamma - 1.0) * changed_mask.float()


# --------------------------------------------------------------------------------------------------------
# Which tokens changed


def diff_changed_tokens(
    chosen_ids: list[int], rejected_ids: list[int], *, min_match: int = 3, prompt_ids: Sequence[int] = ()
) -> tuple[list[bool], list[bool]]:
    """Mark the tokens of each answer that lie outside the matching blocks (>= ``min_match`` tokens) of the
    diff of ``prompt_ids + chosen_ids`` and ``prompt_ids + rejected_ids``, as RLHF-V diffs whole sequences.
    Returns one flag per token of ``chosen_ids`` and of ``rejected_ids``.

    The shared opening of the two sequences (the prompt and any equal first answer tokens) is taken as one
    matching block and skipped before the matcher runs, so that a prompt of hundreds of identical image
    tokens costs nothing. difflib finds the same block first whenever it is the longest common run, as a
    real prompt makes it; otherwise the two diffs can differ only in which copy of a repeated token counts
    as the inserted one.
    """
    chosen_seq, rejected_seq = [*prompt_ids, *chosen_ids], [*prompt_ids, *rejected_ids]
    shared = next(
        (k for k, (a, b) in enumerate(zip(chosen_seq, rejected_seq, strict=False)) if a != b),
        min(len(chosen_seq), len(rejected_seq)),
    )
    if shared < min_match:
        shared = 0  # too short to count: let the matcher see the whole sequences
    chosen_changed = [False] * shared + [True] * (len(chosen_seq) - shared)
    rejected_changed = [False] * shared + [True] * (len(rejected_seq) - shared)
    matcher = difflib.SequenceMatcher(None, chosen_seq[shared:], rejected_seq[shared:], autojunk=False)
    for block in matcher.get_matching_blocks():
        if block.size >= min_match:
            chosen_changed[shared + block.a : shared + block.a + block.size] = [False] * block.size
            rejected_changed[shared + block.b : shared + block.b + block.size] = [False] * block.size
    return chosen_changed[len(prompt_ids) :], rejected_changed[len(prompt_ids) :]


def span_changed_tokens(offsets: list[tuple[int, int]], spans: list[list[int]]) -> list[bool]:
    """Mark the tokens whose characters ``[start, end)`` overlap one of ``spans`` (``[start, end]`` pairs)."""
    return [start < end and any(start < b and a < end for a, b in spans) for start, end in offsets]


def completion_token_offsets(tokenizer: Any, text: str, completion_ids: list[int]) -> list[tuple[int, int]]:
    """Character offsets in ``text`` of each token of ``completion_ids`` (the answer as it was tokenized in
    the batch; it may end with tokens the text lacks, such as EOS, which get empty offsets at the end).
    """
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        n = min(len(ids), len(completion_ids))
        if completion_ids[:n] == ids[:n]:
            return [tuple(o) for o in offsets[:n]] + [(len(text), len(text))] * (len(completion_ids) - n)
    # The answer was tokenized differently in context (a merge across the prompt boundary): measure each
    # token by how much text the answer's decoded prefix grows.
    ends = [
        len(tokenizer.decode(completion_ids[: k + 1], skip_special_tokens=True)) for k in range(len(completion_ids))
    ]
    return list(zip([0, *ends[:-1]], ends, strict=True))


@dataclass
class DataCollatorForDensePreference:
    """Wraps trl's preference collator and adds ``changed_mask`` (2B, L): 1 on the changed completion tokens.

    Rows are laid out as trl does (B chosen rows, then B rejected rows); the changed tokens of a side come from
    its spans when it has some, else from the token diff of the chosen and rejected sequences, prompt included.
    """

    base: Callable[[list[dict[str, Any]]], dict[str, Any]]
    tokenizer: Any
    min_match_tokens: int = 3

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        answers = [(ex.get("chosen"), ex.get("rejected")) for ex in examples]
        spans = [(ex.get("chosen_spans"), ex.get("rejected_spans")) for ex in examples]
        batch = self.base([dict(ex) for ex in examples])  # trl's vision collator edits its examples
        input_ids, completion_mask = batch["input_ids"], batch["completion_mask"]
        prompt_mask = batch["attention_mask"] * (1 - completion_mask)
        changed = torch.zeros_like(completion_mask)
        n = len(examples)
        for i in range(n):
            chosen_pos = completion_mask[i].nonzero().squeeze(-1)
            rejected_pos = completion_mask[n + i].nonzero().squeeze(-1)
            chosen_ids, rejected_ids = input_ids[i, chosen_pos].tolist(), input_ids[n + i, rejected_pos].tolist()
            prompt_ids = input_ids[i, prompt_mask[i].bool()].tolist()  # the same prompt heads both rows
            flags = list(
                diff_changed_tokens(chosen_ids, rejected_ids, min_match=self.min_match_tokens, prompt_ids=prompt_ids)
            )
            for side, ids in enumerate((chosen_ids, rejected_ids)):
                if spans[i][side] and answers[i][side] is not None:
                    offsets = completion_token_offsets(self.tokenizer, message_text(answers[i][side]), ids)
                    flags[side] = span_changed_tokens(offsets, spans[i][side])
            changed[i, chosen_pos] = torch.tensor(flags[0], dtype=changed.dtype)
            changed[n + i, rejected_pos] = torch.tensor(flags[1], dtype=changed.dtype)
        batch["changed_mask"] = changed
        return batch


# --------------------------------------------------------------------------------------------------------
# The trainer


class DDPOTrainer(DPOTrainer):
    """trl's ``DPOTrainer`` with RLHF-V's dense, gamma-weighted sequence log-probabilities.

    Data, models, LoRA, logging and checkpoints are trl's; the collator adds the changed-token mask and
    ``_compute_loss`` (trl's hook for the whole loss) is replaced by the dense loss above.
    """

    def __init__(
        self,
        *args: Any,
        gamma: float,
        normalize: Normalize = "mean",
        min_match_tokens: int = 3,
        sft_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.gamma = gamma
        self.normalize = normalize
        self.sft_weight = sft_weight
        args_config = kwargs.get("args")
        if args_config is not None and args_config.precompute_ref_log_probs:
            raise ValueError("DDPO weighs each token, so reference log-probs cannot be precomputed as sums")
        super().__init__(*args, **kwargs)
        self.data_collator = DataCollatorForDensePreference(
            base=self.data_collator, tokenizer=self._tokenizer, min_match_tokens=min_match_tokens
        )

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        # Keep the answer texts and spans for the collator (trl would drop them as unused columns).
        for column in ("chosen", "rejected", *SPAN_COLUMNS):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def _sequence_logps(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """Weighted sequence log-probs (2B,) of the batch under ``model``."""
        return self._logps(model, inputs)[0]

    def _logps(self, model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted sequence log-probs (2B,) of the batch under ``model``, and the mean token negative
        log-likelihood of the chosen answers (the ``sft_weight`` term; trl's "sft" loss)."""
        model_kwargs = {k: v for k, v in inputs.items() if k not in NON_MODEL_KEYS}
        token_logps, mask = completion_token_logps(
            model, completion_mask=inputs["completion_mask"], fused_lm_head=True, **model_kwargs
        )  # (2B, L-1) each
        weights = dense_token_weights(inputs["changed_mask"][:, 1:], self.gamma)  # (2B, L-1)
        chosen_logps, chosen_mask = token_logps.chunk(2)[0], mask.chunk(2)[0].bool()
        chosen_nll = -chosen_logps[chosen_mask].mean()
        return weighted_sequence_logps(token_logps, weights, mask, normalize=self.normalize), chosen_nll

    def _reference_sequence_logps(self, inputs: dict[str, Any]) -> torch.Tensor:
        adapter = contextlib.nullcontext()
        model = self.ref_model
        if model is None:  # LoRA: the reference is the base model with the adapter switched off
            model = self.model
            unwrapped = self.accelerator.unwrap_model(self.model)
            adapter = use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            adapter,
        ):
            return self._sequence_logps(model, inputs)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        policy_logps, chosen_nll = self._logps(model, inputs)
        policy_chosen, policy_rejected = policy_logps.chunk(2)  # (B,) each
        ref_chosen, ref_rejected = self._reference_sequence_logps(inputs).chunk(2)  # (B,) each
        losses, chosen_rewards, rejected_rewards = ddpo_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, self.beta
        )
        loss = losses.mean()
        if self.sft_weight:
            loss = loss + self.sft_weight * chosen_nll

        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
        metrics["num_tokens"] = [self._total_train_tokens]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen_rewards > rejected_rewards).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(policy_chosen.detach()).mean().item())
        metrics["logps/rejected"].append(gather(policy_rejected.detach()).mean().item())
        completion = inputs["completion_mask"].sum()
        changed = (inputs["changed_mask"] * inputs["completion_mask"]).sum()
        metrics["changed_token_fraction"].append((gather(changed).sum() / gather(completion).sum()).item())

        if return_outputs:  # only for evaluation with logits, which the fused head never builds
            with torch.no_grad():
                outputs = model(**{k: v for k, v in inputs.items() if k not in NON_MODEL_KEYS})
            return loss, outputs
        return loss


def train_ddpo(
    *,
    config: DDPOConfig,
    train_path: Path,
    base_model: str,
    output_dir: Path,
    eval_path: Path | None = None,
    hooks: RunHooks | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``base_model`` with dense DPO on ``train_path``; arguments as for ``train_dpo``.

    Rows may carry ``chosen_spans`` / ``rejected_spans`` (character ``[start, end]`` pairs into that
    answer); sides without them, or with an empty list, get their changed tokens from the token diff.
    Per-step metrics are DPO's plus ``changed_token_fraction``.
    """
    trainer = make_preference_trainer(
        trainer_class=DDPOTrainer,
        config=config,
        train_path=train_path,
        base_model=base_model,
        output_dir=output_dir,
        eval_path=eval_path,
        gamma=config.gamma,
        normalize=config.normalize,
        min_match_tokens=config.min_match_tokens,
        sft_weight=config.sft_weight,
    )
    return run_trainer(
        trainer=trainer,
        output_dir=output_dir,
        hooks=hooks,
        resume=resume,
        merge_lora=config.merge_lora,
        freeze_vision=config.freeze_vision,
    )
