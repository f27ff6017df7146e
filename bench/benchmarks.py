"""Speed of the benchmarks: CHAIR over 100k captions, POPE parsing + metrics over 100k answers, and POPE
questions per second answered by the tiny VLM with batched scoring (batch 1 vs 8 vs 16).

    OMP_NUM_THREADS=1 .venv/bin/python bench/benchmarks.py [--captions 100000] [--answers 100000]
        [--pope-questions 96] [--batch-sizes 1,8,16] [--no-model]

Prints JSON lines, one per measurement, the last a summary (goal: CHAIR over 100k captions under 10 s on 2 cores).
Captions are made up from COCO words with plurals, two-word objects and punctuation, so the matcher meets what
real captions hold; the synonym table is the shared one (../shared/data/chair/coco_synonyms.txt).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.benchmarks.chair import CaptionInput, ObjectMatcher, chair_score  # noqa: E402
from evaluation.benchmarks.pope import PopeQuestion, score_answers  # noqa: E402

SYNONYMS = ROOT.parent / "shared" / "data" / "chair" / "coco_synonyms.txt"
FILLER = [
    "a",
    "an",
    "the",
    "two",
    "some",
    "on",
    "in",
    "with",
    "of",
    "and",
    "near",
    "next",
    "to",
    "while",
    "is",
    "are",
    "sitting",
    "standing",
    "holding",
    "large",
    "small",
    "red",
]
ANSWERS = ["Yes, there is a {o} in the image.", "No, there is no {o}.", "There is not a {o} here.", "Yes.", "No"]


def make_captions(n: int, words: list[str], seed: int = 0) -> list[CaptionInput]:
    rng = random.Random(seed)
    captions = []
    for i in range(n):
        parts = []
        for _ in range(rng.randint(8, 20)):
            word = rng.choice(words) if rng.random() < 0.3 else rng.choice(FILLER)
            parts.append(word + ("s" if rng.random() < 0.2 else ""))
        text = " ".join(parts).capitalize() + rng.choice([".", ". A man smiles.", ", and a dog."])
        captions.append(CaptionInput(i % 5000, text))
    return captions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=100_000)
    parser.add_argument("--answers", type=int, default=100_000)
    parser.add_argument("--pope-questions", type=int, default=96, help="questions the tiny VLM answers per batch size")
    parser.add_argument("--batch-sizes", default="1,8,16")
    parser.add_argument("--no-model", action="store_true", help="skip the tiny VLM measurement")
    args = parser.parse_args()

    t0 = time.perf_counter()
    matcher = ObjectMatcher.from_file(SYNONYMS)
    load_s = time.perf_counter() - t0
    vocab = [*matcher.objects, "hot dog", "teddy bear", "wine glass"]
    captions = make_captions(args.captions, sorted(set(vocab) | set(list(matcher.object_words)[:200])))
    truth = {i: set(random.Random(i).sample(matcher.objects, 5)) for i in range(5000)}
    t0 = time.perf_counter()
    result = chair_score(captions, truth, matcher)
    chair_s = time.perf_counter() - t0
    print(json.dumps({"bench": "chair", "captions": len(captions), "seconds": round(chair_s, 3),
                      "captions_per_s": round(len(captions) / chair_s), "synonyms_load_s": round(load_s, 4),
                      "chair_s": round(result.chair_s, 4), "chair_i": round(result.chair_i, 4),
                      "mentions": result.n_mentions}))  # fmt: skip

    rng = random.Random(1)
    questions = [PopeQuestion(i, f"{i // 6}.jpg", "Is there a dog in the image?", rng.choice(["yes", "no"]))
                 for i in range(args.answers)]  # fmt: skip
    answers = [rng.choice(ANSWERS).format(o="dog") for _ in range(args.answers)]
    t0 = time.perf_counter()
    metrics = score_answers(questions, answers)
    pope_s = time.perf_counter() - t0
    print(json.dumps({"bench": "pope_parse_and_metrics", "answers": args.answers, "seconds": round(pope_s, 3),
                      "answers_per_s": round(args.answers / pope_s), "accuracy": round(metrics.accuracy, 4),
                      "yes_ratio": round(metrics.yes_ratio, 4)}))  # fmt: skip
    model_rates = (
        {}
        if args.no_model
        else pope_with_the_tiny_vlm(
            n_questions=args.pope_questions, batch_sizes=[int(b) for b in args.batch_sizes.split(",")]
        )
    )
    print(json.dumps({"summary": True, "chair_100k_goal_s": 10, "chair_s": round(chair_s, 3),
                      "chair_within_goal": chair_s * 100_000 / max(len(captions), 1) < 10,
                      "pope_s": round(pope_s, 3),
                      "pope_tiny_vlm_questions_per_s": model_rates}))  # fmt: skip


def pope_with_the_tiny_vlm(*, n_questions: int, batch_sizes: list[int]) -> dict[str, float]:
    """POPE questions per second on shapes-world scenes, the tiny VLM answering greedily (16 new tokens at most,
    as a POPE run does) ``batch`` questions per generate call; one line per batch size. Answers must not depend
    on the batch size (left padding), which each line checks against batch 1."""
    import tempfile

    import torch

    from evaluation import runners
    from training.tiny_models import make_tiny_model

    torch.manual_seed(0)
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pope-") as scratch:
        model = make_tiny_model(kind="vlm", out_dir=Path(scratch) / "vlm")
        images = Path(scratch) / "images"
        questions = runners.pope_shapes_questions(
            n_images=n_questions // 2, seed=0, image_dir=images, settings=["random"]
        )
        answer = runners.model_answerer(model=str(model), image_dir=images, max_new_tokens=16)
        runners.pope_run(questions={"random": questions["random"][:4]}, generate_fn=answer, batch_size=4)  # warm-up
        reference = None
        for batch in batch_sizes:
            t0 = time.perf_counter()
            outcome = runners.pope_run(questions=questions, generate_fn=answer, batch_size=batch)
            seconds = time.perf_counter() - t0
            answers = [e["answer"] for e in outcome.examples]
            reference = answers if reference is None else reference
            rates[str(batch)] = round(len(answers) / seconds, 2)
            print(json.dumps({"bench": "pope_tiny_vlm", "batch_size": batch, "questions": len(answers),
                              "seconds": round(seconds, 3), "questions_per_s": rates[str(batch)],
                              "same_answers_as_first": answers == reference,
                              "torch_threads": torch.get_num_threads()}))  # fmt: skip
    return rates


if __name__ == "__main__":
    main()
