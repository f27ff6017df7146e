"""Every method runs on the realistic tiny variant (bf16 checkpoint, no pad token, dropout on, 576 image tokens),
the traits of Llama-2, Mistral-7B-Instruct-v0.1 and LLaVA-1.5 that the easy tiny models hide.

At a learning rate of 1e-6 Adam moves each weight by about 1e-6 per step whatever the gradient's scale, which
rounds away on bf16 weights (their spacing near 0.02 is about 1e-4): the weights move only when a method keeps
fp32 master weights. Saved models must name a pad token (EOS here), so they batch when loaded again.
"""

import json
import math

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer
from trl import DPOTrainer

from training.core import load_preference_dataset
from training.methods.best_of_n import BestOfNConfig, run_best_of_n
from training.methods.ddpo import DDPOConfig, train_ddpo
from training.methods.dpo import DPOConfig, make_preference_trainer, train_dpo
from training.methods.grpo import GRPOConfig, RLOOConfig, train_grpo, train_rloo
from training.methods.ppo import PPOConfig, train_ppo
from training.methods.reward import RewardConfig, load_reward_model, train_reward
from training.methods.sft import SFTConfig, train_sft

LR = 1e-6
STEPS = 2
ONLINE = {"max_completion_length": 8}
# method -> (train function, config class, extra settings); online methods get the realistic reward model.
METHODS = {
    "sft": (train_sft, SFTConfig, {}),
    "reward": (train_reward, RewardConfig, {"per_device_train_batch_size": 4}),
    "dpo": (train_dpo, DPOConfig, {}),
    "ddpo": (train_ddpo, DDPOConfig, {}),
    "dpo-lora": (train_dpo, DPOConfig, {"use_lora": True, "lora_dropout": 0.1, "lora_r": 4}),
    "ppo": (train_ppo, PPOConfig, ONLINE),
    "grpo": (train_grpo, GRPOConfig, ONLINE),
    "rloo": (train_rloo, RLOOConfig, ONLINE),
}
ONLINE_METHODS = {"ppo", "grpo", "rloo"}


def q_proj(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The first layer's query projection of a text model, a reward model or a VLM's language model."""
    return next(t for name, t in state.items() if name.endswith("layers.0.self_attn.q_proj.weight")).float()


def moved_fraction(base_dir, trained_dir) -> float:
    """Fraction of the first query projection's entries that differ between two saved models."""
    base = AutoModel.from_pretrained(base_dir, dtype=torch.float32).state_dict()
    trained = AutoModel.from_pretrained(trained_dir, dtype=torch.float32).state_dict()
    return (q_proj(base) != q_proj(trained)).float().mean().item()


def assert_saved_with_a_pad_id(folder) -> None:
    """The saved config and tokenizer name a pad token: the base's EOS, since it had none."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert AutoConfig.from_pretrained(folder).get_text_config().pad_token_id == tokenizer.pad_token_id


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_moves_fp32_master_weights_of_a_bf16_model_without_pad_token(
    method, real_lm_dir, real_reward_dir, text_preference_file, tmp_path
):
    """Two steps at lr 1e-6 from the bf16, pad-less, dropout-on LM move most entries of a trained weight, and
    the saved model names its pad token."""
    train, config_class, extra = METHODS[method]
    if method in ONLINE_METHODS:
        extra = {**extra, "reward_model": str(real_reward_dir)}
    result = train(
        config=config_class(max_steps=STEPS, learning_rate=LR, save_steps=100, **extra),
        train_path=text_preference_file,
        base_model=str(real_lm_dir),
        output_dir=tmp_path / "out",
    )
    assert result.steps == STEPS and math.isfinite(result.metrics.get("loss", 0.0))
    assert not (result.output_dir / "adapter_config.json").exists()
    assert moved_fraction(real_lm_dir, result.output_dir) > 0.5
    assert_saved_with_a_pad_id(result.output_dir)


@pytest.mark.parametrize("method", ["sft", "dpo", "reward"])
def test_vision_methods_train_the_realistic_vlm_with_576_image_tokens(
    method, real_vlm_dir, image_preference_file, tmp_path
):
    """With the default max_length (512 text tokens) rows of 576 image tokens train, the bf16 VLM's fp32
    master weights move at lr 1e-6, and the saved folder names its pad token."""
    train, config_class, extra = METHODS[method]
    result = train(
        config=config_class(max_steps=1, learning_rate=LR, per_device_train_batch_size=2, save_steps=100),
        train_path=image_preference_file,
        base_model=str(real_vlm_dir),
        output_dir=tmp_path / "out",
    )
    assert result.steps == 1 and math.isfinite(result.metrics["loss"])
    assert moved_fraction(real_vlm_dir, result.output_dir) > 0.5
    config = json.loads((result.output_dir / "config.json").read_text())
    eos = AutoTokenizer.from_pretrained(result.output_dir).eos_token_id
    assert config["text_config"]["pad_token_id"] == eos


def test_a_dpo_row_keeps_all_its_image_tokens_and_its_whole_answer(real_vlm_dir, image_preference_file, tmp_path):
    """max_length counts text: the 576 image tokens come on top, so the default 512 neither cuts the image
    (trl would fail on mismatched image features) nor the answer, which still ends with EOS."""
    config = DPOConfig(max_steps=1, per_device_train_batch_size=2)
    assert config.max_length == 512
    trainer = make_preference_trainer(
        trainer_class=DPOTrainer,
        config=config,
        train_path=image_preference_file,
        base_model=str(real_vlm_dir),
        output_dir=tmp_path / "out",
        eval_path=None,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    image_token_id = trainer.model.config.image_token_id
    eos = trainer.processing_class.tokenizer.eos_token_id
    for ids, attended, completion in zip(
        batch["input_ids"], batch["attention_mask"], batch["completion_mask"], strict=True
    ):
        assert (ids == image_token_id).sum().item() == 576
        assert ids[attended.bool()][-1].item() == eos  # the answer's turn ends: nothing was cut
        assert completion.sum().item() > 1


def test_best_of_n_scores_batches_with_a_reward_model_without_pad_token(
    real_lm_dir, real_reward_dir, text_preference_file, tmp_path
):
    """Best-of-N samples from the pad-less bf16 policy and scores each batch of candidates with the pad-less
    reward model; every written score is finite."""
    result = run_best_of_n(
        config=BestOfNConfig(n=3, reward_model=str(real_reward_dir), batch_size=2, max_prompts=4),
        train_path=text_preference_file,
        base_model=str(real_lm_dir),
        output_dir=tmp_path / "bon",
    )
    rows = [json.loads(line) for line in (result.output_dir / "best.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert all(math.isfinite(c["score"]) for row in rows for c in row["candidates"])


@pytest.mark.parametrize("source", ["trained here", "foreign folder"])
def test_a_reward_model_without_pad_token_scores_padded_batches_like_single_texts(
    source, real_lm_dir, real_reward_dir, text_preference_file, tmp_path
):
    """A reward model trained on the pad-less LM, and a foreign reward model whose tokenizer and config name
    no pad token, load for scoring with EOS as pad: a short answer padded in a batch scores as it does alone."""
    folder = real_reward_dir
    if source == "trained here":
        folder = train_reward(
            config=RewardConfig(max_steps=1, save_steps=100),
            train_path=text_preference_file,
            base_model=str(real_lm_dir),
            output_dir=tmp_path / "rm",
        ).output_dir
    model, tokenizer, _ = load_reward_model(folder)
    model.float()
    rows = list(load_preference_dataset(text_preference_file))
    texts = ["A red circle.", rows[0]["chosen"] + " " + rows[1]["chosen"]]
    with torch.no_grad():
        batch = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
    torch.testing.assert_close(batch[0], alone[0], rtol=1e-4, atol=1e-4)
