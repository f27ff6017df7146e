"""`manage.py benchmark NAME …`: run one benchmark here and now and print its result as JSON.

- `benchmark chair --captions FILE --annotations FILE [--annotations FILE …] [--synonyms FILE]`
- `benchmark chair --shapes N --model PATH [--seed S]`: the model describes N held-out shapes-world scenes,
  CHAIR with the shapes world's vocabulary (an object is "<colour> <shape>")
- `benchmark captions --predictions FILE --references FILE [--no-meteor]`
- `benchmark pope --questions FILE [--questions FILE …] --images DIR --model PATH [--batch-size N]`
- `benchmark object_halbench --responses FILE --annotations FILE …` (descriptions given), or `--model PATH
  --images DIR --annotations INSTANCES` (the model describes the instances' images), or `--shapes N --model PATH`
- `benchmark mmhal --questions FILE --judge-model M [--judge-kind local|openai --judge-url URL] [--model PATH
  --images DIR]`: without --model the file's "model_answer"s are judged
- `benchmark shr --items FILE --judge-model M … [--model PATH --images DIR]`, or `--shapes N --model PATH`
  (judged against the scenes' ground truth, no judge model)

Output: `{"benchmark", <summary metrics>, "per_caption" | "per_question": [...]}` (per question for POPE and
MMHal, per caption otherwise, each `{"key", "input", "answer", "detail", "hallucinated"}`). A file that is
missing or does not hold what the benchmark needs is a CommandError naming the file and the field.
"""

import json
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation import runners
from loupe.errors import ApplicationError


def _model_arguments(parser: CommandParser, *, required: bool, max_new_tokens: int) -> None:
    parser.add_argument("--model", required=required, default=None, help="folder of the model that answers")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    parser.add_argument("--limit", type=int, default=None, help="only the first N items")


def _shapes_arguments(parser: CommandParser) -> None:
    parser.add_argument("--shapes", type=int, default=None, metavar="N", help="N held-out shapes-world scenes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shapes scenes")
    parser.add_argument("--shapes-dir", default=None, help="keep the scenes' PNGs here (default: a temporary folder)")


def _judge_arguments(parser: CommandParser) -> None:
    parser.add_argument("--judge-kind", choices=["local", "openai"], default="local")
    parser.add_argument("--judge-model", default=None, help="judge folder (local) or the served model's name")
    parser.add_argument("--judge-url", default="", help="OpenAI-compatible server base URL (…/v1)")
    parser.add_argument(
        "--judge-api-key-env", default="LOUPE_LABELER_API_KEY", help="environment variable holding the server's key"
    )
    parser.add_argument("--judge-max-new-tokens", type=int, default=512)
    parser.add_argument("--judge-batch-size", type=int, default=8)
    parser.add_argument("--prompt-version", default=None, help="judge prompt version (default: the latest)")


class Command(BaseCommand):
    help = (
        "Run a benchmark (pope, chair, captions, object_halbench, mmhal, shr) and print its metrics and "
        "per-example detail as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="name", required=True, metavar="NAME")
        chair = sub.add_parser("chair", help="CHAIR_s / CHAIR_i of generated captions")
        chair.add_argument("--captions", default=None, help='JSON list of {"image_id", "caption"}')
        chair.add_argument("--annotations", action="append", help="COCO instances or captions JSON (repeatable)")
        chair.add_argument("--synonyms", default=None, help=f"synonym table (default {runners.DEFAULT_SYNONYMS})")
        _shapes_arguments(chair)
        _model_arguments(chair, required=False, max_new_tokens=64)
        captions = sub.add_parser("captions", help="coco-caption BLEU-1..4, ROUGE-L, METEOR")
        captions.add_argument("--predictions", required=True, help="one caption per line, or JSON lines")
        captions.add_argument("--references", required=True, help="one caption per line, or JSON lines of lists")
        captions.add_argument("--no-meteor", action="store_true", help="skip METEOR (no Java process)")
        pope = sub.add_parser("pope", help="POPE accuracy, precision, recall, F1 and yes-ratio per setting")
        pope.add_argument("--questions", required=True, action="append", help="POPE JSON lines file (repeatable)")
        pope.add_argument("--images", required=True, help="folder holding the questions' images")
        _model_arguments(pope, required=True, max_new_tokens=16)
        halbench = sub.add_parser("object_halbench", help="Object HalBench response- and mention-level rates")
        halbench.add_argument("--responses", default=None, help='JSON list of {"image_id", "caption"}')
        halbench.add_argument("--annotations", action="append", help="COCO instances or captions JSON (repeatable)")
        halbench.add_argument("--synonyms", default=None)
        halbench.add_argument("--images", default=None, help="folder of the instances' images (with --model)")
        halbench.add_argument("--unique-mentions", action="store_true", help="count each object once per response")
        _shapes_arguments(halbench)
        _model_arguments(halbench, required=False, max_new_tokens=256)
        mmhal = sub.add_parser("mmhal", help="MMHal judged QA: score 0-6 and hallucination rate")
        mmhal.add_argument("--questions", required=True, help="MMHal response_template.json")
        mmhal.add_argument("--images", default=None, help="folder of the questions' images (with --model)")
        _judge_arguments(mmhal)
        _model_arguments(mmhal, required=False, max_new_tokens=256)
        shr = sub.add_parser("shr", help="SHR: share of hallucinated sentences in detailed descriptions")
        shr.add_argument("--items", default=None, help='JSON list of {"image", "regions", "facts", "description"}')
        shr.add_argument("--images", default=None, help="folder of the items' images (with --model)")
        _judge_arguments(shr)
        _shapes_arguments(shr)
        _model_arguments(shr, required=False, max_new_tokens=256)
        humor = sub.add_parser("humor", help="win-rate against the top human captions, Bradley-Terry ratings")
        humor.add_argument("--pairwise-project", default=None, help="read people's verdicts from this project")
        humor.add_argument("--contest-project", default=None, help="caption-contest (rating) project")
        humor.add_argument("--captions", default=None, help="JSON object contest id -> the model's caption")
        humor.add_argument("--model-name", default=None, help="the model's name in the results (default: --model)")
        humor.add_argument("--top-k", type=int, default=1, help="human captions per contest to face")
        humor.add_argument("--n-bootstrap", type=int, default=200)
        humor.add_argument(
            "--create-pairwise-project", default=None, metavar="SLUG",
            help="instead of a judge model: create a pairwise project for people to judge",
        )  # fmt: skip
        _judge_arguments(humor)
        _model_arguments(humor, required=False, max_new_tokens=32)

    def handle(self, *args: object, **options: object) -> None:
        name = options["name"]
        try:
            for key in ("batch_size", "limit", "shapes", "judge_batch_size", "judge_max_new_tokens"):
                value = options.get(key)
                if value is not None and value < 1:
                    raise runners.InputError(f"--{key.replace('_', '-')} must be at least 1")
            if name == "humor":
                self.stdout.write(json.dumps(self._humor(options), indent=1, default=str))
                return
            with tempfile.TemporaryDirectory(prefix="loupe-benchmark-") as scratch:
                outcome = self._run(name, options, Path(options.get("shapes_dir") or scratch))
        except runners.InputError as exc:
            raise CommandError(str(exc)) from exc
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        per = "per_question" if name in ("pope", "mmhal") else "per_caption"
        body = {"benchmark": name, **outcome.summary, per: outcome.examples}
        self.stdout.write(json.dumps(body, indent=1, default=str))

    def _answerer(self, options: dict, image_dir: str | Path | None):  # noqa: ANN202
        if not options.get("model"):
            return None
        return runners.model_answerer(
            model=options["model"], image_dir=image_dir or ".", max_new_tokens=options["max_new_tokens"]
        )

    def _judge(self, options: dict) -> tuple[runners.Judge | None, str]:
        if not options.get("judge_model"):
            return None, ""
        return runners.judge_open(
            runners.JudgeSettings(
                kind=options["judge_kind"],
                model=options["judge_model"],
                base_url=options["judge_url"],
                api_key=os.environ.get(options["judge_api_key_env"], ""),
                max_new_tokens=options["judge_max_new_tokens"],
                batch_size=options["judge_batch_size"],
            )
        )

    def _run(self, name: str, options: dict, shapes_dir: Path) -> runners.BenchmarkOutcome:
        shapes = {"n_images": options["shapes"], "seed": options["seed"]} if options.get("shapes") else None
        if shapes is not None and not options.get("model"):
            raise runners.InputError(f"--shapes needs --model: the model describes the scenes ({name})")
        if name == "chair":
            if shapes is not None:
                return runners.chair_shapes_run(
                    **shapes, image_dir=shapes_dir, answer_fn=self._answerer(options, shapes_dir),
                    batch_size=options["batch_size"],
                )  # fmt: skip
            if not options["captions"]:
                raise runners.InputError("give --captions FILE with --annotations FILE, or --shapes N with --model")
            return runners.chair_run(
                captions=options["captions"], annotations=options["annotations"] or [], synonyms=options["synonyms"]
            )
        if name == "captions":
            return runners.captions_run(
                predictions=options["predictions"], references=options["references"], meteor=not options["no_meteor"]
            )
        if name == "pope":
            questions = runners.pope_read(
                questions=options["questions"], images=options["images"], limit=options["limit"]
            )
            answerer = self._answerer(options, options["images"])
            return runners.pope_run(questions=questions, generate_fn=answerer, batch_size=options["batch_size"])
        if name == "object_halbench":
            image_dir = shapes_dir if shapes is not None else options["images"]
            return runners.object_halbench_run(
                annotations=options["annotations"] or [],
                responses=options["responses"],
                images=options["images"],
                answer_fn=self._answerer(options, image_dir) if options["responses"] is None else None,
                shapes=shapes,
                shapes_dir=shapes_dir,
                synonyms=options["synonyms"],
                batch_size=options["batch_size"],
                limit=options["limit"],
                unique_mentions=options["unique_mentions"],
            )
        if name == "shr" and shapes is not None:
            return runners.shr_run(
                shapes=shapes, shapes_dir=shapes_dir, answer_fn=self._answerer(options, shapes_dir),
                batch_size=options["batch_size"],
            )  # fmt: skip
        judge, judge_name = self._judge(options)
        if judge is None:
            raise runners.InputError(f"{name} needs a judge model: give --judge-model")
        common = {
            "judge": judge,
            "judge_name": judge_name,
            "answer_fn": self._answerer(options, options["images"]),
            "images": options["images"],
            "prompt_version": options["prompt_version"],
            "batch_size": options["batch_size"],
            "judge_batch_size": options["judge_batch_size"],
            "limit": options["limit"],
        }
        if name == "mmhal":
            return runners.mmhal_run(questions=options["questions"], **common)
        return runners.shr_run(items=options["items"], **common)

    def _humor(self, options: dict) -> dict:
        """Humor through the services: people's verdicts, a judge model's, or a new pairwise project."""
        from annotation.models import Project
        from evaluation import selectors, services
        from evaluation.models import BenchmarkRun

        config: dict = {"n_bootstrap": options["n_bootstrap"]}
        if options["pairwise_project"]:
            config["pairwise_project"] = options["pairwise_project"]
        elif options["contest_project"]:
            config.update(contest_project=options["contest_project"], top_k=options["top_k"])
            if options["captions"]:
                config["captions"] = options["captions"]
            else:
                config.update(batch_size=options["batch_size"], max_new_tokens=options["max_new_tokens"])
            if not options["create_pairwise_project"]:
                config["judge"] = {"kind": options["judge_kind"], "model": options["judge_model"] or "",
                                   "max_new_tokens": options["judge_max_new_tokens"],
                                   "batch_size": options["judge_batch_size"]}  # fmt: skip
                if options["judge_url"]:
                    config["judge"]["base_url"] = options["judge_url"]
                if options["prompt_version"]:
                    config["prompt_version"] = options["prompt_version"]
        else:
            raise runners.InputError("give --pairwise-project SLUG, or --contest-project SLUG with a judge")
        model = options["model"] or ""
        if options["create_pairwise_project"]:
            if not options["contest_project"]:
                raise runners.InputError("--create-pairwise-project needs --contest-project")
            if not options["captions"] and not model:
                raise runners.InputError("--create-pairwise-project needs the model's --captions FILE or --model")
            config["judge"] = {"kind": "local", "model": "."}  # not used: people judge
        checked = services.benchmark_config_check(benchmark="humor", config=config, model_dir=model)
        run = BenchmarkRun(benchmark="humor", model_path=options["model_name"] or model, config=checked)
        if options["create_pairwise_project"]:
            contest = Project.objects.get(slug=checked["contest_project"])
            contests = selectors.contest_top_captions(project=contest, top_k=checked["top_k"])
            run.model_path = model
            captions = services.humor_model_captions(run, contests, runners._noop)
            project = services.humor_pairwise_project_create(
                contest_project=contest,
                slug=options["create_pairwise_project"],
                captions={item.external_id: c for (item, _), c in zip(contests, captions, strict=True)},
                model_name=options["model_name"] or model or "model",
                top_k=checked["top_k"],
            )
            return {"created": project.slug, "kind": project.kind, "items": project.items.count()}
        outcome = services.humor_outcome(run=run, progress=runners._noop)
        return {"benchmark": "humor", **outcome.summary, "per_pair": outcome.examples}
