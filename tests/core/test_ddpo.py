"""Dense DPO weighs corrected tokens gamma times, reduces to length-normalised DPO at gamma = 1, and trains."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer
from trl import DPOTrainer

from training.core import gather_token_logps
from training.methods.ddpo import (
    DDPOConfig,
    DDPOTrainer,
    completion_token_offsets,
    ddpo_loss,
    dense_token_weights,
    diff_changed_tokens,
    span_changed_tokens,
    train_ddpo,
    weighted_sequence_logps,
)
from training.methods.dpo import make_preference_trainer

# ------------------------------------------------------------------------------------------ changed tokens


def test_diff_marks_replaced_tokens_on_both_sides():
    """A replaced token is changed in both answers; equal runs of 3+ tokens are not."""
    chosen = [1, 2, 3, 4, 5, 6, 7, 8]
    rejected = [1, 2, 3, 4, 99, 6, 7, 8]
    chosen_changed, rejected_changed = diff_changed_tokens(chosen, rejected)
    assert [i for i, c in enumerate(chosen_changed) if c] == [4]
    assert [i for i, c in enumerate(rejected_changed) if c] == [4]


def test_diff_ignores_matches_shorter_than_min_match():
    """Two equal tokens between changes are too short a match and count as changed, as in RLHF-V."""
    chosen = [1, 2, 3, 10, 4, 5, 11, 6, 7, 8]
    rejected = [1, 2, 3, 20, 4, 5, 21, 6, 7, 8]
    chosen_changed, _ = diff_changed_tokens(chosen, rejected, min_match=3)
    assert [i for i, c in enumerate(chosen_changed) if c] == [3, 4, 5, 6]
    chosen_changed, _ = diff_changed_tokens(chosen, rejected, min_match=2)
    assert [i for i, c in enumerate(chosen_changed) if c] == [3, 6]


def test_diff_marks_an_insertion_on_the_inserting_side_only():
    """Tokens only the rejected answer has (a hallucinated object) are changed there; chosen keeps none."""
    chosen = [1, 2, 3, 4, 5, 6]
    rejected = [1, 2, 3, 50, 51, 52, 4, 5, 6]
    chosen_changed, rejected_changed = diff_changed_tokens(chosen, rejected)
    assert not any(chosen_changed)
    assert [i for i, c in enumerate(rejected_changed) if c] == [3, 4, 5]


def test_diff_sees_the_prompt_so_a_shared_opening_token_is_unchanged():
    """As RLHF-V diffs whole sequences, one equal first token continues the prompt's matching block and stays
    unchanged; diffed alone, the answers' one-token match is too short and that token is marked."""
    prompt = [7, 8, 9]
    chosen = [1, 20, 21, 5, 6, 4]
    rejected = [1, 30, 31, 5, 6, 4]
    chosen_changed, rejected_changed = diff_changed_tokens(chosen, rejected, prompt_ids=prompt)
    assert [i for i, c in enumerate(chosen_changed) if c] == [1, 2]
    assert [i for i, c in enumerate(rejected_changed) if c] == [1, 2]
    alone, _ = diff_changed_tokens(chosen, rejected)
    assert [i for i, c in enumerate(alone) if c] == [0, 1, 2]
    # A prompt shorter than min_match is matched like any other stretch: here too short to count.
    short, _ = diff_changed_tokens(chosen, rejected, prompt_ids=[9])
    assert [i for i, c in enumerate(short) if c] == [0, 1, 2]


def test_character_spans_pick_the_tokens_of_the_marked_words(tiny_lm_dir):
    """Spans over characters select exactly the tokens that spell the marked words, and EOS after the
    text is never marked."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    text = "There are two objects: a green star at the top and a red square on the left."
    start = text.index("a green star")
    span = [start, start + len("a green star at the top")]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    flags = span_changed_tokens(completion_token_offsets(tokenizer, text, ids), [span])
    marked = tokenizer.decode([t for t, f in zip(ids, flags, strict=True) if f])
    assert marked.strip() == "a green star at the top"
    assert not flags[-1]


# ------------------------------------------------------------------------------------------------- loss


def test_loss_is_ln2_when_policy_equals_reference():
    """With the policy's log-probs equal to the reference's the loss is ln 2 for any beta and gamma."""
    token_logps = -torch.rand(4, 7) * 3
    mask = torch.ones(4, 7)
    changed = (torch.rand(4, 7) > 0.5).float()
    for beta in (0.1, 0.5, 2.0):
        for gamma in (1.0, 1.1, 5.0):
            logps = weighted_sequence_logps(token_logps, dense_token_weights(changed, gamma), mask)
            chosen, rejected = logps.chunk(2)
            losses, _, _ = ddpo_loss(chosen, rejected, chosen, rejected, beta)
            torch.testing.assert_close(losses, torch.full_like(losses, math.log(2)))


def test_gamma_makes_changed_tokens_pull_gamma_times_harder():
    """The gradient of the loss on a changed token is gamma times that on an unchanged token of the same
    answer, and equal to it when gamma is 1."""
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float)  # chosen, rejected
    changed = torch.tensor([[0, 1, 0, 0, 1, 0], [0, 0, 1, 1, 0, 0]], dtype=torch.float)
    ref = torch.tensor([-9.0, -8.0])
    for gamma in (1.0, 5.0):
        token_logps = (-torch.arange(1.0, 13.0).reshape(2, 6) / 4).requires_grad_()
        logps = weighted_sequence_logps(token_logps, dense_token_weights(changed, gamma), mask)
        losses, _, _ = ddpo_loss(logps[:1], logps[1:], ref[:1], ref[1:], beta=0.5)
        losses.sum().backward()
        grad = token_logps.grad
        for row in (0, 1):
            changed_grad = grad[row][(changed[row] == 1) & (mask[row] == 1)]
            unchanged_grad = grad[row][(changed[row] == 0) & (mask[row] == 1)]
            torch.testing.assert_close(changed_grad / unchanged_grad[0], torch.full_like(changed_grad, gamma))
            torch.testing.assert_close(unchanged_grad, torch.full_like(unchanged_grad, unchanged_grad[0].item()))
        assert grad[0, 5] == 0  # padding gets no gradient


def rlhf_v_sequence_logps(
    logits: torch.Tensor, labels: torch.Tensor, token_weight: torch.Tensor, use_average: bool
) -> torch.Tensor:
    """RLHF-V's weighted sequence log-prob, re-written from Muffin's ``get_batch_logps`` (per-token) and
    ``compute_weighted_logp``: labels -100 outside the answer, ``token_weight`` indexed like ``labels[:, 1:]``."""
    labels = labels[:, 1:].clone()
    loss_mask = labels != -100
    labels[~loss_mask] = 0
    per_token_logp = torch.gather(logits[:, :-1].log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    weighted_mask = token_weight * loss_mask
    logp = (per_token_logp * weighted_mask).sum(-1)
    return logp / weighted_mask.sum(-1) if use_average else logp


def rlhf_v_dpo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """Muffin's ``dpo_loss`` on (2B,) chosen-then-rejected log-probs, averaged over the batch."""
    policy_chosen, policy_rejected = policy_logps.chunk(2)
    ref_chosen, ref_rejected = ref_logps.chunk(2)
    logits = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected)
    return -F.logsigmoid(beta * logits).mean()


# (normalize, beta, gamma, RLHF-V's dpo_use_average): the paper's formula and RLHF-V's released run.
PRESETS = [("mean", 0.5, 5.0, True), ("sum", 0.1, 1.1, False)]


@pytest.mark.parametrize(("normalize", "beta", "gamma", "use_average"), PRESETS)
def test_sum_and_mean_compute_what_rlhf_v_computes(normalize, beta, gamma, use_average):
    """On a hand-made batch (prompt, answers of different lengths, padding, changed tokens) each variant's
    sequence log-probs and loss equal RLHF-V's code with the matching ``dpo_use_average``; the two differ."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 11, (4, 8), generator=generator)  # 2 chosen rows, then 2 rejected rows
    completion = torch.tensor(
        [[0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1, 1]]
    )
    changed = torch.tensor(
        [[0, 0, 0, 1, 0, 0, 1, 0], [0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0, 1, 0]]
    )
    labels = input_ids.masked_fill(completion == 0, -100)
    reference_weight = torch.where(changed[:, 1:].bool(), gamma, 1.0)
    losses = {}
    for name in ("policy", "ref"):
        logits = torch.randn(4, 8, 11, generator=generator)
        ours = weighted_sequence_logps(
            gather_token_logps(logits, labels),
            dense_token_weights(changed[:, 1:], gamma),
            completion[:, 1:],
            normalize=normalize,
        )
        expected = rlhf_v_sequence_logps(logits, labels, reference_weight, use_average)
        torch.testing.assert_close(ours, expected)
        other = "sum" if normalize == "mean" else "mean"
        assert not torch.allclose(ours, weighted_sequence_logps(
            gather_token_logps(logits, labels), dense_token_weights(changed[:, 1:], gamma), completion[:, 1:],
            normalize=other,
        ))  # fmt: skip
        losses[name] = ours, expected
    ours_loss, _, _ = ddpo_loss(*losses["policy"][0].chunk(2), *losses["ref"][0].chunk(2), beta)
    torch.testing.assert_close(ours_loss.mean(), rlhf_v_dpo_loss(losses["policy"][1], losses["ref"][1], beta))


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every weight by the same seeded noise, so the policy differs from the reference."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)


@pytest.fixture(scope="module")
def ddpo_trainer(tiny_lm_dir, spans_preference_file, tmp_path_factory):
    return make_preference_trainer(
        trainer_class=DDPOTrainer,
        config=DDPOConfig(per_device_train_batch_size=4),
        train_path=spans_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path_factory.mktemp("ddpo"),
        eval_path=None,
        gamma=5.0,
    )


def test_batches_mark_changed_tokens_inside_the_answers_only(ddpo_trainer, spans_preference_file):
    """Every pair has changed tokens; none lie in the prompt or padding; the rejected side's changed tokens
    spell the marked wrong words."""
    batch = next(iter(ddpo_trainer.get_train_dataloader()))
    changed, completion = batch["changed_mask"], batch["completion_mask"]
    assert torch.all(changed <= completion)
    n = changed.shape[0] // 2
    tokenizer = ddpo_trainer.processing_class
    for i in range(n):
        assert changed[i].any() or changed[n + i].any()
        wrong = tokenizer.decode(batch["input_ids"][n + i][changed[n + i].bool()])
        assert any(word in wrong for word in ("red", "green", "blue", "yellow", "purple", "orange"))
        assert "There" not in wrong


def test_gamma_one_equals_dpo_on_mean_token_logps(ddpo_trainer, tiny_lm_dir, spans_preference_file, tmp_path):
    """With gamma = 1 the dense loss equals trl's DPO with length-normalised log-probs ("sigmoid_norm") on
    the same batch and weights; with gamma = 5 it does not."""
    config = DDPOConfig(per_device_train_batch_size=4)
    dpo_args = config.trl_args(output_dir=tmp_path, with_eval=False)
    dpo_args.loss_type = ["sigmoid_norm"]
    dpo = DPOTrainer(
        model=str(tiny_lm_dir),
        args=dpo_args,
        train_dataset=ddpo_trainer.train_dataset,
        processing_class=ddpo_trainer.processing_class,
    )
    perturb(dpo.model, seed=3)
    perturb(ddpo_trainer.model, seed=3)
    batch = next(iter(ddpo_trainer.get_train_dataloader()))
    dpo_batch = {k: v for k, v in batch.items() if k != "changed_mask"}
    with torch.no_grad():
        expected = dpo.compute_loss(dpo.model, dpo_batch)
        ddpo_trainer.gamma = 1.0
        dense_gamma_1 = ddpo_trainer.compute_loss(ddpo_trainer.model, batch)
        ddpo_trainer.gamma = 5.0
        dense_gamma_5 = ddpo_trainer.compute_loss(ddpo_trainer.model, batch)
    assert abs(expected.item() - math.log(2)) > 1e-3  # the policy really differs from the reference
    assert abs(dense_gamma_1.item() - expected.item()) < 1e-6
    assert abs(dense_gamma_5.item() - expected.item()) > 1e-4


def test_trainer_loss_is_ln2_before_training(tiny_lm_dir, spans_preference_file, tmp_path):
    """On a fresh trainer (policy = reference) the loss of a real batch is ln 2 for any beta, gamma and
    normalization."""
    trainer = make_preference_trainer(
        trainer_class=DDPOTrainer,
        config=DDPOConfig(per_device_train_batch_size=4),
        train_path=spans_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path,
        eval_path=None,
        gamma=5.0,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    for beta, gamma, normalize in [(0.1, 1.1, "sum"), (0.5, 5.0, "mean"), (1.0, 1.0, "mean")]:
        trainer.beta, trainer.gamma, trainer.normalize = beta, gamma, normalize
        with torch.no_grad():
            assert abs(trainer.compute_loss(trainer.model, batch).item() - math.log(2)) < 1e-6


# Pairs as the platform writes them for non-correction feedback (empty span lists), with the words each side
# changed: the diff must find them on both sides, including when the answers share only their first word.
WORDED_PAIRS = [
    ("There is a red circle at the top.", "There is a blue circle at the top.", "red", "blue"),
    ("A red circle is at the top left.", "A blue square is at the top left.", "red circle", "blue square"),
    ("The purple triangle is on the right.", "The orange triangle is on the right.", "purple", "orange"),
    ("I can see two squares near the bottom.", "I can see three squares near the bottom.", "two", "three"),
]


@pytest.fixture(scope="module")
def worded_trainer(tiny_lm_dir, tmp_path_factory):
    """A DDPO trainer on WORDED_PAIRS (one batch holds them all) whose policy differs from its reference."""
    root = tmp_path_factory.mktemp("worded")
    path = root / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": "What is in the picture?", "chosen": chosen, "rejected": rejected,
                        "chosen_spans": [], "rejected_spans": []}) + "\n"
            for chosen, rejected, _, _ in WORDED_PAIRS
        )
    )  # fmt: skip
    trainer = make_preference_trainer(
        trainer_class=DDPOTrainer,
        config=DDPOConfig(per_device_train_batch_size=len(WORDED_PAIRS)),
        train_path=path,
        base_model=str(tiny_lm_dir),
        output_dir=root / "out",
        eval_path=None,
        gamma=5.0,
    )
    perturb(trainer.model, seed=11)
    return trainer


def _completion(batch: dict, row: int) -> list[int]:
    return batch["input_ids"][row][batch["completion_mask"][row].bool()].tolist()


def test_collator_marks_the_changed_words_on_both_sides_from_the_diff(worded_trainer):
    """Rows with empty span lists get their changed tokens from the diff: exactly the differing words, on the
    chosen and on the rejected row, at their own positions; a shared first word ("A") stays unchanged, which
    a diff of the answers alone would mark."""
    batch = next(iter(worded_trainer.get_train_dataloader()))
    tokenizer = worded_trainer.processing_class
    expected = {chosen: (rejected, c, r) for chosen, rejected, c, r in WORDED_PAIRS}
    n = len(WORDED_PAIRS)
    for i in range(n):
        rejected, chosen_words, rejected_words = expected[
            tokenizer.decode(_completion(batch, i), skip_special_tokens=True)
        ]
        assert tokenizer.decode(_completion(batch, n + i), skip_special_tokens=True) == rejected
        for row, words in ((i, chosen_words), (n + i, rejected_words)):
            marked = batch["changed_mask"][row].bool()
            assert tokenizer.decode(batch["input_ids"][row][marked]).strip() == words
            assert not (marked & ~batch["completion_mask"][row].bool()).any()
        if chosen_words == "red circle":  # the answers share one opening token: only the prompt keeps it unchanged
            alone, _ = diff_changed_tokens(_completion(batch, i), _completion(batch, n + i))
            assert tokenizer.decode(_completion(batch, i)[0]) == "A" and alone[0]


@pytest.mark.parametrize(("normalize", "beta", "gamma", "use_average"), PRESETS)
def test_trainer_loss_is_rlhf_v_dense_dpo_on_the_batch(worded_trainer, normalize, beta, gamma, use_average):
    """The trainer's loss on a real batch equals RLHF-V's, computed from the policy's and the reference's logits
    with gamma on the tokens the collator marked (RLHF-V's weights index the labels shifted by one). Shifting
    the weights by a token, or weighting one side only, breaks the equality."""
    trainer = worded_trainer
    batch = next(iter(trainer.get_train_dataloader()))
    changed = batch["changed_mask"]
    n = changed.shape[0] // 2
    assert changed[:n].any(dim=1).all() and changed[n:].any(dim=1).all()
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    reference_weight = torch.where(changed[:, 1:].bool(), gamma, 1.0)
    trainer.normalize, trainer.beta, trainer.gamma = normalize, beta, gamma
    with torch.no_grad():
        logps = {
            name: rlhf_v_sequence_logps(
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                labels,
                reference_weight,
                use_average,
            )
            for name, model in (("policy", trainer.model), ("ref", trainer.ref_model))
        }
        loss = trainer.compute_loss(trainer.model, batch)
    expected = rlhf_v_dpo_loss(logps["policy"], logps["ref"], beta)
    assert abs(expected.item() - math.log(2)) > 1e-3  # the policy really differs from the reference
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------- training


def test_ddpo_trains_the_tiny_lm_with_spans(tiny_lm_dir, spans_preference_file, tmp_path, recording_hooks):
    """Three DDPO steps on span-marked pairs report finite DPO metrics and the changed-token share, change
    the weights, and save a model that loads."""
    hooks = recording_hooks()
    result = train_ddpo(
        config=DDPOConfig(max_steps=3, gamma=5.0),
        train_path=spans_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "out",
        hooks=hooks,
    )
    assert result.steps == 3
    metrics = [m for _, _, m in hooks.steps]
    assert len(metrics) == 3
    for m in metrics:
        assert {"loss", "rewards/margins", "rewards/accuracies", "learning_rate"} <= m.keys()
        assert all(math.isfinite(v) for v in m.values())
        assert 0 < m["changed_token_fraction"] < 0.6
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    trained = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert all(
        not torch.equal(a, b) for a, b in zip(base.parameters(), trained.parameters(), strict=True) if a.dim() > 1
    )


def test_ddpo_trains_the_tiny_vlm_from_the_diff(tiny_vlm_dir, image_preference_file, tmp_path):
    """Two DDPO steps on image rows without spans (changed tokens from the diff) train and save a VLM, here with
    RLHF-V's released settings: the reported sequence log-probs are sums over the answer's tokens (a
    near-uniform model gives about -ln V per token), not means."""
    result = train_ddpo(
        config=DDPOConfig(max_steps=2, normalize="sum", beta=0.1, gamma=1.1),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "out",
    )
    assert result.steps == 2 and math.isfinite(result.metrics["loss"])
    assert 0 < result.metrics["changed_token_fraction"] < 0.6
    trained = AutoModelForImageTextToText.from_pretrained(result.output_dir)
    assert result.metrics["logps/chosen"] < -4 * math.log(trained.config.text_config.vocab_size)
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    assert not torch.equal(
        trained.model.multi_modal_projector.linear_1.weight, base.model.multi_modal_projector.linear_1.weight
    )


def test_config_checks_gamma_and_normalize():
    """A non-positive gamma and an unknown normalize are refused; the defaults are the paper's (mean, beta 0.5,
    gamma 5) and RLHF-V's released run (sum, beta 0.1, gamma 1.1) is a valid config."""
    with pytest.raises(ValueError, match="gamma"):
        DDPOConfig(gamma=0)
    with pytest.raises(ValueError, match="normalize"):
        DDPOConfig(normalize="average")
    assert (DDPOConfig().normalize, DDPOConfig().beta, DDPOConfig().gamma) == ("mean", 0.5, 5.0)
    assert DDPOConfig(normalize="sum", beta=0.1, gamma=1.1).normalize == "sum"
