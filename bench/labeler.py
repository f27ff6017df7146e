"""Questions the AI labeler scores per second: batched versus one call per question, locally and through
``serve_model``'s OpenAI-compatible server.

The same model (``--model``, or the tiny VLM built here and taught in a few steps to answer "yes" or "no")
answers the same yes/no questions: the claims of the true and hallucinated captions of shapes-world scenes,
asked as the labeler asks them (prompt version v1, with the image). Modes:

- ``local_one``: the local backend, one question per forward pass;
- ``local_batched``: the local backend, ``--batch`` questions per forward pass;
- ``server_one``: through the server, one request at a time (``max_concurrency=1``);
- ``server_concurrent``: through the server, ``--concurrency`` requests in flight, which the server batches
  (up to ``--batch`` rows per ``generate``).

Each mode runs once untimed (warm-up), then ``--repeats`` timed passes, the modes alternating so that drift in
machine load hits all alike. Prints one JSON line per mode (median questions per second) and a last summary
line with the batched/one-by-one ratios (goal: local ≥ 5× on the CPU). It is never a test.

    .venv/bin/python bench/labeler.py                           # tiny VLM, CPU
    .venv/bin/python bench/labeler.py --questions 256 --batch 64
    .venv/bin/python bench/labeler.py --model /path/to/llava --device cuda --no-server
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shapes_questions(*, n: int, size: int) -> list:
    """``n`` yes/no questions about shapes-world scenes, as the labeler asks them."""
    from annotation.labeler.claims import question_from_claim, split_claims
    from annotation.labeler.pipeline import yes_no_question
    from annotation.labeler.prompts import prompt_set
    from annotation.shapes_world import scene_caption, scene_generate, scene_hallucinated_caption, scene_render

    prompts = prompt_set("v1")
    questions = []
    seed = 0
    while len(questions) < n:
        scene = scene_generate(seed=seed, width=size, height=size)
        image = scene_render(scene)
        wrong = scene_hallucinated_caption(scene, rng=random.Random(seed))[0]
        for text in (scene_caption(scene), wrong):
            for claim in split_claims(text):
                questions.append(
                    yes_no_question(question=question_from_claim(claim.text), image=image, prompts=prompts)
                )
        seed += 1
    return questions[:n]


def teach_answer_format(backend, questions: list, *, steps: int = 30) -> None:
    """A few AdamW steps so the random tiny VLM's first answer token is "yes" or "no" (the answers themselves
    stay arbitrary): a server's yes/no verdicts need those tokens among its top logprobs, else it answers
    nonsense and the backend refuses it."""
    import torch

    yes_ids, no_ids = backend.yes_no_ids(with_image=True)
    inputs = backend.question_inputs(questions[:32])
    targets = torch.tensor([(yes_ids if k % 2 else no_ids)[0] for k in range(len(questions[:32]))])
    optimizer = torch.optim.AdamW(backend.model.parameters(), lr=2e-3)
    backend.model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(backend.model(**inputs).logits[:, -1, :].float(), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    backend.model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="A VLM folder or hub name; default: the tiny VLM built here.")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu).")
    parser.add_argument("--questions", type=int, default=128, help="Questions per timed pass.")
    parser.add_argument("--batch", type=int, default=32, help="Questions per forward pass (local) / server batch.")
    parser.add_argument("--concurrency", type=int, default=16, help="Requests in flight through the server.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes per mode.")
    parser.add_argument("--no-server", action="store_true", help="Skip the modes through serve_model.")
    args = parser.parse_args()

    import torch

    from annotation.labeler.backends.local import LocalBackend

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if not model:
            from training.tiny_models import make_tiny_model

            model = str(make_tiny_model(kind="vlm", out_dir=Path(tmp) / "vlm"))
        one = LocalBackend.from_path(model, device=args.device, batch_size=1)
        batched = LocalBackend(one.model, one.processing_class, name=one.name, batch_size=args.batch)
        size = getattr(one.processing_class.image_processor, "crop_size", {}).get("height") or 48
        questions = shapes_questions(n=args.questions, size=size)
        if not args.model:
            teach_answer_format(one, questions)
            model = str(Path(tmp) / "vlm-yes-no")
            one.model.save_pretrained(model)
            one.processing_class.save_pretrained(model)
        modes = {"local_one": one, "local_batched": batched}
        server = None
        if not args.no_server:
            from annotation.labeler.backends.openai_compat import OpenAICompatBackend
            from training.serving import ServeConfig, serve

            server = serve(model_path=model, config=ServeConfig(port=0, max_batch=args.batch, device=args.device))
            url = server.url + "/v1"
            modes["server_one"] = OpenAICompatBackend(base_url=url, model=server.model_name, max_concurrency=1)
            modes["server_concurrent"] = OpenAICompatBackend(
                base_url=url, model=server.model_name, max_concurrency=args.concurrency
            )
        try:
            times: dict[str, list[float]] = {name: [] for name in modes}
            for repeat in range(args.repeats + 1):
                for name, backend in modes.items():
                    start = time.perf_counter()
                    verdicts = backend.yes_probabilities(questions=questions)
                    elapsed = time.perf_counter() - start
                    assert len(verdicts) == len(questions)
                    if repeat:  # the first pass warms up
                        times[name].append(elapsed)
        finally:
            if server is not None:
                server.stop()
        rates = {}
        for name, elapsed in times.items():
            median = statistics.median(elapsed)
            rates[name] = len(questions) / median
            print(
                json.dumps(
                    {
                        "mode": name,
                        "questions": len(questions),
                        "batch": 1 if name.endswith("_one") else args.batch,
                        "median_s": round(median, 4),
                        "questions_per_s": round(rates[name], 1),
                        "fastest_s": round(min(elapsed), 4),
                    }
                )
            )
        summary = {
            "summary": True,
            "model": model if args.model else "tiny-vlm",
            "device": str(one.device),
            "torch_threads": torch.get_num_threads(),
            "local_batched_over_one": round(rates["local_batched"] / rates["local_one"], 2),
        }
        if "server_one" in rates:
            summary["server_concurrent_over_one"] = round(rates["server_concurrent"] / rates["server_one"], 2)
            summary["server_concurrent_over_local_one"] = round(rates["server_concurrent"] / rates["local_one"], 2)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
