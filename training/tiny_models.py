"""Tiny random models, built offline, that load like hub models.

No model hub is reachable in tests or on a laptop demo, so Loupe builds its own: a tokenizer trained here on
shapes-world text plus a little generic English, and Llama-family models with random weights from small
configs. Each is written with ``save_pretrained`` so the code under test loads it with ``from_pretrained(dir)``,
the same path that loads a real model. Kinds:

- ``lm``: a causal language model (``LlamaForCausalLM``, 2 layers, hidden size 64);
- ``reward``: a scalar reward model (``LlamaForSequenceClassification`` with one label);
- ``vlm``: a LLaVA (CLIP vision tower + Llama text model) with a ``LlavaProcessor`` for 48x48 images cut into
  3x3 patches of 16 pixels, one per shapes-world grid cell.

Two variants of each. ``tiny`` (the default) is the easy case: fp32 weights, a pad token distinct from EOS, no
dropout, 9 image tokens. ``realistic`` has the traits of the real checkpoints Loupe fine-tunes (Llama-2,
Mistral-7B-Instruct-v0.1, LLaVA-1.5) that the easy case hides: weights saved in bf16 (``from_pretrained``
loads them in bf16 unless told otherwise), no pad token, attention dropout on, and LLaVA-1.5's 576 image
tokens (336x336 images in 14-pixel patches), still a few kilobytes wide.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from annotation.shapes_world import (
    COLOURS,
    QUESTIONS,
    SHAPE_SYNONYMS,
    pope_questions,
    scene_caption,
    scene_generate,
    scene_hallucinated_caption,
)

KINDS = ("lm", "vlm", "reward")
VARIANTS = ("tiny", "realistic")

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
IMAGE_TOKEN = "<image>"  # noqa: S105 (a token of the vocabulary, not a secret)
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
VOCAB_SIZE = 512  # byte-level alphabet (256) plus merges that make most shapes-world words one token

IMAGE_SIZE = 48
PATCH_SIZE = 16  # 48 / 16 = 3: one patch per cell of the shapes world's 3x3 grid
# The realistic variant's vision tower sees images as LLaVA-1.5's does: 336 / 14 = 24, 24 x 24 = 576 tokens.
REALISTIC_IMAGE_SIZE = 336
REALISTIC_PATCH_SIZE = 14
REALISTIC_DROPOUT = 0.1

# A chat template that renders the roles as special tokens and ends each turn with EOS (no newlines: the role
# tokens already separate the turns). Message content may be a string or a list of {"type": "text"|"image"}
# parts (the multimodal form trl and processors use); image parts become the image token, which only the vlm
# tokenizer has.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|{{ message['role'] }}|>"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ image_token }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "</s>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)

# A little everyday English so the tokenizer handles text outside the shapes world without byte soup.
GENERIC_ENGLISH = """\
The quick brown fox jumps over the lazy dog. A picture shows people, animals and things.
Please answer the question about the image. The answer is yes. The answer is no.
This caption is funny. That caption is not funny. It is somewhat funny.
I think the model made a mistake here, and the corrected answer is better.
Which response is better? The first one is more helpful and more accurate than the second.
A cat sits on a table next to a cup of coffee. Two dogs run across the green grass in the park.
The figure plots accuracy against the number of training steps for three methods.
"""


def _training_corpus() -> list[str]:
    """Shapes-world captions, wrong captions, questions and POPE questions, plus generic English."""
    lines = GENERIC_ENGLISH.splitlines() + list(QUESTIONS)
    rng = random.Random(0)
    for seed in range(300):
        scene = scene_generate(seed=seed)
        lines.append(scene_caption(scene))
        lines.append(scene_hallucinated_caption(scene, rng=rng)[0])
        lines.extend(q["question"] for q in pope_questions(scene))
    lines.append(" ".join(word for words in SHAPE_SYNONYMS.values() for word in words))
    lines.append(" ".join(COLOURS) + " Yes No yes no")
    return lines


def make_tiny_tokenizer(
    *, with_image_token: bool = False, with_pad_token: bool = True, model_max_length: int = 512
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text encodes, no unknown bytes) trained on the local corpus.

    Without ``with_pad_token`` the tokenizer declares no pad token, as Llama-2's does (``<pad>`` stays in the
    vocabulary, unused, so both variants share token ids)."""
    specials = [PAD, BOS, EOS, UNK, *ROLE_TOKENS] + ([IMAGE_TOKEN] if with_image_token else [])
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_training_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=specials[4:],
        padding_side="left",  # decoder-only generation pads on the left
        model_max_length=model_max_length,
    )
    if not with_pad_token:
        tokenizer.pad_token = None
    tokenizer.chat_template = CHAT_TEMPLATE.replace("{{ image_token }}", IMAGE_TOKEN if with_image_token else "")
    if with_image_token:
        tokenizer.image_token = IMAGE_TOKEN
    return tokenizer


def _text_config(tokenizer: PreTrainedTokenizerFast, *, realistic: bool) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048 if realistic else 512,  # room for 576 image tokens and the text
        attention_dropout=REALISTIC_DROPOUT if realistic else 0.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def make_tiny_model(*, kind: str, out_dir: Path, seed: int = 0, variant: str = "tiny") -> Path:
    """Build a tiny random model of ``kind`` ("lm", "vlm" or "reward") and ``variant`` ("tiny" or
    "realistic", see the module docstring) with its tokenizer/processor in ``out_dir`` and return ``out_dir``.
    The same seed gives the same weights; nothing is downloaded.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    realistic = variant == "realistic"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = make_tiny_tokenizer(
        with_image_token=kind == "vlm", with_pad_token=not realistic, model_max_length=2048 if realistic else 512
    )
    text_config = _text_config(tokenizer, realistic=realistic)

    if kind == "lm":
        model = LlamaForCausalLM(text_config)
        tokenizer.save_pretrained(out_dir)
    elif kind == "reward":
        text_config.num_labels = 1
        model = LlamaForSequenceClassification(text_config)
        tokenizer.save_pretrained(out_dir)
    else:
        image_size, patch_size = (REALISTIC_IMAGE_SIZE, REALISTIC_PATCH_SIZE) if realistic else (IMAGE_SIZE, PATCH_SIZE)
        vision_config = CLIPVisionConfig(
            image_size=image_size,
            patch_size=patch_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            attention_dropout=REALISTIC_DROPOUT if realistic else 0.0,
        )
        config = LlavaConfig(
            vision_config=vision_config,
            text_config=text_config,
            image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
            vision_feature_select_strategy="default",  # drop CLS: one image token per patch
            vision_feature_layer=-1,
            projector_hidden_act="gelu",
        )
        model = LlavaForConditionalGeneration(config)
        processor = LlavaProcessor(
            image_processor=_tiny_image_processor(image_size),
            tokenizer=tokenizer,
            patch_size=patch_size,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
            chat_template=tokenizer.chat_template,
            image_token=IMAGE_TOKEN,
        )
        processor.save_pretrained(out_dir)

    if getattr(model, "generation_config", None) is not None:  # the reward model does not generate
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = tokenizer.bos_token_id
    if realistic:
        model.to(torch.bfloat16)  # saved in bf16, as hub checkpoints are; the config records the dtype
    model.save_pretrained(out_dir)
    return out_dir


def _tiny_image_processor(image_size: int):
    """CLIP preprocessing at ``image_size`` pixels square. Without torchvision, transformers offers only the
    PIL backend, which is
    what we build then; with it, the default class (the one a hub checkpoint would load)."""
    import transformers

    try:
        import torchvision  # noqa: F401

        image_processor_class = transformers.CLIPImageProcessor
    except ImportError:
        image_processor_class = transformers.CLIPImageProcessorPil
    return image_processor_class(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
