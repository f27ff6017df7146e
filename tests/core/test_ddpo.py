"""Dense DPO weighs corrected tokens gamma times, reduces to length-normalised DPO at gamma = 1, and trains."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer
from trl import DPOTrainer

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
    """On a fresh trainer (policy = reference) the loss of a real batch is ln 2 for any beta and gamma."""
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
    for beta, gamma in [(0.1, 1.1), (0.5, 5.0), (1.0, 1.0)]:
        trainer.beta, trainer.gamma = beta, gamma
        with torch.no_grad():
            assert abs(trainer.compute_loss(trainer.model, batch).item() - math.log(2)) < 1e-6


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
    """Two DDPO steps on image rows without spans (changed tokens from the diff) train and save a VLM."""
    result = train_ddpo(
        config=DDPOConfig(max_steps=2),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "out",
    )
    assert result.steps == 2 and math.isfinite(result.metrics["loss"])
    assert 0 < result.metrics["changed_token_fraction"] < 0.6
    trained = AutoModelForImageTextToText.from_pretrained(result.output_dir)
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    assert not torch.equal(
        trained.model.multi_modal_projector.linear_1.weight, base.model.multi_modal_projector.linear_1.weight
    )


def test_config_checks_gamma():
    """A non-positive gamma is refused; the defaults are the paper's."""
    with pytest.raises(ValueError, match="gamma"):
        DDPOConfig(gamma=0)
    assert (DDPOConfig().beta, DDPOConfig().gamma) == (0.5, 5.0)
