"""LoRA runs train adapters only; saved unmerged, the merge step gives a full model whose weights are exactly the
base plus (alpha / r) * B @ A, for policies, vision models and reward models."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

from training.core import read_model_info
from training.methods.ddpo import DDPOConfig, train_ddpo
from training.methods.dpo import DPOConfig, train_dpo
from training.methods.lora import merge_adapter
from training.methods.reward import RewardConfig, load_reward_model, train_reward
from training.methods.sft import SFTConfig, train_sft

LORA = {"use_lora": True, "lora_r": 4, "lora_alpha": 8, "merge_lora": False, "learning_rate": 1e-2}


def test_an_unmerged_lora_run_saves_only_adapter_weights(tiny_lm_dir, text_preference_file, tmp_path):
    """The run's folder is a peft adapter (LoRA A/B matrices of q/k/v only) recorded as an adapter."""
    result = train_sft(
        config=SFTConfig(max_steps=2, **LORA),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "adapter",
    )
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert adapter and all("lora_A" in name or "lora_B" in name for name in adapter)
    assert {name.split(".")[-3] for name in adapter} == {"q_proj", "k_proj", "v_proj"}
    assert any(t.abs().sum() > 0 for name, t in adapter.items() if "lora_B" in name)  # B starts at 0: it trained
    assert read_model_info(result.output_dir)["is_adapter"] is True
    assert not (result.output_dir / "model.safetensors").exists()


def test_merged_weights_are_base_plus_the_scaled_adapter_product(tiny_lm_dir, text_preference_file, tmp_path):
    """Each adapted weight becomes W + alpha/r * B @ A; every other weight is the base's, bit for bit."""
    result = train_sft(
        config=SFTConfig(max_steps=2, **LORA),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "adapter",
    )
    merged_dir = merge_adapter(adapter_dir=result.output_dir, output_dir=tmp_path / "merged")
    base = dict(AutoModelForCausalLM.from_pretrained(tiny_lm_dir).named_parameters())
    merged = dict(AutoModelForCausalLM.from_pretrained(merged_dir).named_parameters())
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    config = json.loads((result.output_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    adapted = set()
    for name, a in adapter.items():
        if "lora_A" not in name:
            continue
        module = name.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        b = adapter[name.replace("lora_A", "lora_B")]
        expected = base[f"{module}.weight"] + scale * b @ a
        torch.testing.assert_close(merged[f"{module}.weight"], expected, rtol=1e-5, atol=1e-6)
        adapted.add(f"{module}.weight")
    assert len(adapted) == 2 * 3  # two layers, q/k/v each
    for name, weight in merged.items():
        if name not in adapted:
            assert torch.equal(weight, base[name]), name
    assert (merged_dir / "tokenizer.json").is_file() and read_model_info(merged_dir)["is_adapter"] is False


def test_a_vision_model_lora_run_merges_into_a_vlm(tiny_vlm_dir, image_preference_file, tmp_path):
    """LoRA on the tiny VLM adapts attention in the vision tower and the language model; the merged folder
    loads as a VLM with its processor."""
    result = train_sft(
        config=SFTConfig(max_steps=1, **LORA),
        train_path=image_preference_file,
        base_model=str(tiny_vlm_dir),
        output_dir=tmp_path / "vadapter",
    )
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert any("vision_tower" in name for name in adapter) and any("language_model" in name for name in adapter)
    merged_dir = merge_adapter(adapter_dir=result.output_dir, output_dir=tmp_path / "vmerged")
    model = AutoModelForImageTextToText.from_pretrained(merged_dir)
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir)
    assert not torch.equal(
        model.model.language_model.layers[0].self_attn.q_proj.weight,
        base.model.language_model.layers[0].self_attn.q_proj.weight,
    )
    assert (merged_dir / "processor_config.json").is_file()


def test_a_reward_model_adapter_keeps_its_trained_head_when_merged(tiny_lm_dir, text_preference_file, tmp_path):
    """A LoRA reward run trains its score head alongside the adapters; merged, it scores like the adapter did."""
    result = train_reward(
        config=RewardConfig(max_steps=2, **LORA),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "radapter",
    )
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert any("score" in name for name in adapter)
    merged_dir = merge_adapter(adapter_dir=result.output_dir, output_dir=tmp_path / "rmerged")
    model, tokenizer, _ = load_reward_model(merged_dir)
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    peft_model = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(tiny_lm_dir, num_labels=1), str(result.output_dir)
    ).eval()
    peft_model.config.pad_token_id = model.config.pad_token_id = tokenizer.pad_token_id
    inputs = tokenizer(["There is a red circle."], return_tensors="pt")
    torch.testing.assert_close(model(**inputs).logits, peft_model(**inputs).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("train", "config_class"), [(train_dpo, DPOConfig), (train_ddpo, DDPOConfig)], ids=["dpo", "ddpo"]
)
def test_preference_runs_keep_the_adapter_alone_when_merge_lora_is_off(
    train, config_class, tiny_lm_dir, text_preference_file, tmp_path
):
    """merge_lora off is honoured by DPO and DDPO as by the other methods: the folder holds the adapter only."""
    result = train(
        config=config_class(max_steps=1, **LORA),
        train_path=text_preference_file,
        base_model=str(tiny_lm_dir),
        output_dir=tmp_path / "adapter",
    )
    assert (result.output_dir / "adapter_config.json").is_file()
    assert not (result.output_dir / "model.safetensors").exists()
    assert read_model_info(result.output_dir)["is_adapter"] is True


def test_a_merged_reward_adapter_on_a_base_without_pad_token_keeps_the_pad_id(
    real_lm_dir, text_preference_file, tmp_path
):
    """A reward adapter trained on a base whose tokenizer has no pad token merges into a folder whose config
    names the pad token (EOS), so the plain Auto classes score a padded batch as they score each text alone."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    result = train_reward(
        config=RewardConfig(max_steps=1, **LORA),
        train_path=text_preference_file,
        base_model=str(real_lm_dir),
        output_dir=tmp_path / "radapter",
    )
    merged_dir = merge_adapter(adapter_dir=result.output_dir, output_dir=tmp_path / "rmerged")
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert json.loads((merged_dir / "config.json").read_text())["pad_token_id"] == tokenizer.eos_token_id
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    model = AutoModelForSequenceClassification.from_pretrained(merged_dir, dtype=torch.float32).eval()
    texts = ["A red circle.", "There are two objects: a blue star at the top and a green square on the left."]
    with torch.no_grad():
        batch = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
    torch.testing.assert_close(batch[0], alone[0], rtol=1e-4, atol=1e-4)


def test_qlora_is_refused_when_the_config_is_made_where_it_cannot_run(monkeypatch):
    """QLoRA needs LoRA, bitsandbytes and a CUDA GPU; each missing piece is refused with a message saying what
    is missing, by the config and by the service the web form and API call (torch-free checks)."""
    import importlib.util

    from loupe.errors import ApplicationError
    from training.methods import configs
    from training.services import method_config_build

    with pytest.raises(ValueError, match="turn use_lora on"):
        SFTConfig(use_qlora=True)
    real_find_spec = importlib.util.find_spec
    installed = {"bitsandbytes": False}

    def find_spec(name, *args, **kwargs):
        if name == "bitsandbytes":
            return object() if installed["bitsandbytes"] else None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(configs, "_has_cuda_gpu", lambda: True)
    with pytest.raises(ValueError, match="bitsandbytes, which is not installed"):
        DPOConfig(use_lora=True, use_qlora=True)
    with pytest.raises(ApplicationError, match="bitsandbytes, which is not installed"):
        method_config_build(method="reward", config={"use_lora": True, "use_qlora": True})
    installed["bitsandbytes"] = True
    monkeypatch.setattr(configs, "_has_cuda_gpu", lambda: False)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        RewardConfig(use_lora=True, use_qlora=True)
    monkeypatch.setattr(configs, "_has_cuda_gpu", lambda: True)
    config = SFTConfig(use_lora=True, use_qlora=True)  # where both exist, the 4-bit load is configured
    assert config.model_init_kwargs()["quantization_config"].load_in_4bit
    with pytest.raises(ValueError, match="PPO does not train on a 4-bit base"):  # PPO loads its models itself
        configs.PPOConfig(use_lora=True, use_qlora=True, reward_function="tests.training.scorers:word_count")
