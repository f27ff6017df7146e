"""Tiny models load through from_pretrained like hub models and behave like real ones where tests rely on it."""

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoModelForSequenceClassification,
    AutoProcessor,
    AutoTokenizer,
)

from annotation.shapes_world import scene_caption, scene_generate, scene_render
from training.tiny_models import IMAGE_TOKEN, make_tiny_model


def test_lm_loads_and_generates(tiny_lm_dir):
    """The tiny LM and its tokenizer load from the directory and generate new tokens after a chat prompt."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Describe the image."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert tokenizer.pad_token and tokenizer.eos_token and tokenizer.bos_token and tokenizer.unk_token


def test_tokenizer_round_trips_any_text_and_knows_shapes_words(tiny_lm_dir):
    """Byte-level BPE decodes exactly what it encoded, even outside its corpus, and shapes-world words are
    single tokens."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    for text in [scene_caption(scene_generate(seed=3)), "Zebra café 42% — naïve!", "  two  spaces\nnewline"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    for word in ["circle", "square", "triangle", "purple", "orange", "objects"]:
        assert len(tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1
    assert len(tokenizer) < 1000


def test_chat_prompt_is_a_prefix_of_the_full_conversation(tiny_lm_dir):
    """The generation prompt renders as the start of the conversation with the answer (trl relies on it)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    prompt = [{"role": "user", "content": "What shapes are in the image?"}]
    answer = [{"role": "assistant", "content": "There is one object: a red star at the top."}]
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
    full_ids = tokenizer.apply_chat_template(prompt + answer, return_dict=True)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    assert full_ids[-1] == tokenizer.eos_token_id


def test_same_seed_same_weights(tmp_path):
    """A seed fixes the weights; another seed gives other weights."""
    a = AutoModelForCausalLM.from_pretrained(make_tiny_model(kind="lm", out_dir=tmp_path / "a", seed=1))
    b = AutoModelForCausalLM.from_pretrained(make_tiny_model(kind="lm", out_dir=tmp_path / "b", seed=1))
    c = AutoModelForCausalLM.from_pretrained(make_tiny_model(kind="lm", out_dir=tmp_path / "c", seed=2))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


def test_reward_model_scores_padded_batches_like_single_texts(tiny_reward_dir):
    """The reward model gives one score per text, and padding a text in a batch does not change its score."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_reward_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_dir).eval()
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    texts = ["A red circle.", "There are two objects: a blue star at the top and a green square on the left."]
    with torch.no_grad():
        batch = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
    assert batch.shape == (2, 1)
    assert torch.allclose(batch[0], alone[0], atol=1e-5)


def test_vlm_loads_and_generates_from_an_image(tiny_vlm_dir):
    """The tiny LLaVA and its processor load with the Auto classes; an image becomes one token per patch and
    the image changes what the model predicts."""
    processor = AutoProcessor.from_pretrained(tiny_vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm_dir).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert IMAGE_TOKEN in text

    def encode(seed):
        return processor(images=[scene_render(scene_generate(seed=seed))], text=[text], return_tensors="pt")

    inputs = encode(1)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert (inputs["input_ids"] == image_token_id).sum().item() == 9  # 48x48 image, 16x16 patches
    with torch.no_grad():
        logits_1 = model(**inputs).logits[0, -1]
        logits_2 = model(**encode(2)).logits[0, -1]
    assert not torch.allclose(logits_1, logits_2)
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5 or out[0, -1] == processor.tokenizer.eos_token_id


def test_unknown_kind_is_refused(tmp_path):
    """Asking for a kind that does not exist names the kinds that do."""
    with pytest.raises(ValueError, match="lm"):
        make_tiny_model(kind="gpt5", out_dir=tmp_path)


def test_the_realistic_variant_has_the_traits_of_real_checkpoints(real_lm_dir, real_vlm_dir, real_reward_dir):
    """Saved in bf16, no pad token in the tokenizer or the configs, attention dropout on in the text model and
    the vision tower, and LLaVA-1.5's 576 image tokens per image."""
    for folder in (real_lm_dir, real_reward_dir):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert tokenizer.pad_token is None and tokenizer.eos_token is not None
    lm = AutoModelForCausalLM.from_pretrained(real_lm_dir)
    assert lm.dtype == torch.bfloat16 and lm.config.pad_token_id is None
    assert lm.generation_config.pad_token_id is None and lm.config.attention_dropout > 0
    reward = AutoModelForSequenceClassification.from_pretrained(real_reward_dir)
    assert reward.dtype == torch.bfloat16 and reward.config.pad_token_id is None

    processor = AutoProcessor.from_pretrained(real_vlm_dir)
    vlm = AutoModelForImageTextToText.from_pretrained(real_vlm_dir)
    assert vlm.dtype == torch.bfloat16 and processor.tokenizer.pad_token is None
    assert vlm.config.text_config.attention_dropout > 0 and vlm.config.vision_config.attention_dropout > 0
    inputs = processor(images=[scene_render(scene_generate(seed=1))], text=[f"{IMAGE_TOKEN}Hi"], return_tensors="pt")
    assert (inputs["input_ids"] == vlm.config.image_token_id).sum().item() == 576  # 336 / 14 = 24, 24 x 24


def test_unknown_variant_is_refused(tmp_path):
    """A variant that does not exist names the ones that do."""
    with pytest.raises(ValueError, match="realistic"):
        make_tiny_model(kind="lm", out_dir=tmp_path, variant="huge")
