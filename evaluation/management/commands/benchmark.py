"""`manage.py benchmark NAME …`: run one benchmark here and now and print its result as JSON.

- `benchmark chair --captions FILE --annotations FILE [--annotations FILE …] [--synonyms FILE]`
- `benchmark captions --predictions FILE --references FILE [--no-meteor]`
- `benchmark pope --questions FILE [--questions FILE …] --images DIR --model PATH [--batch-size N]`

Output: `{"benchmark", <summary metrics>, "per_caption" | "per_question": [...]}` (per caption for CHAIR and
caption metrics, per question for POPE, each `{"key", "input", "answer", "detail", "hallucinated"}`). A file that
is missing or does not hold what the benchmark needs is a CommandError naming the file and the field.
"""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluation import runners


class Command(BaseCommand):
    help = "Run a benchmark (pope, chair, captions) on files and print its metrics and per-example detail as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="name", required=True, metavar="NAME")
        chair = sub.add_parser("chair", help="CHAIR_s / CHAIR_i of generated captions")
        chair.add_argument("--captions", required=True, help='JSON list of {"image_id", "caption"}')
        chair.add_argument(
            "--annotations", required=True, action="append", help="COCO instances or captions JSON (repeatable)"
        )
        chair.add_argument("--synonyms", default=None, help=f"synonym table (default {runners.DEFAULT_SYNONYMS})")
        captions = sub.add_parser("captions", help="coco-caption BLEU-1..4, ROUGE-L, METEOR")
        captions.add_argument("--predictions", required=True, help="one caption per line, or JSON lines")
        captions.add_argument("--references", required=True, help="one caption per line, or JSON lines of lists")
        captions.add_argument("--no-meteor", action="store_true", help="skip METEOR (no Java process)")
        pope = sub.add_parser("pope", help="POPE accuracy, precision, recall, F1 and yes-ratio per setting")
        pope.add_argument("--questions", required=True, action="append", help="POPE JSON lines file (repeatable)")
        pope.add_argument("--images", required=True, help="folder holding the questions' images")
        pope.add_argument("--model", required=True, help="folder of the model that answers")
        pope.add_argument("--batch-size", type=int, default=8)
        pope.add_argument("--max-new-tokens", type=int, default=16)
        pope.add_argument("--limit", type=int, default=None, help="only the first N questions of each file")

    def handle(self, *args: object, **options: object) -> None:
        name = options["name"]
        try:
            if name == "chair":
                outcome = runners.chair_run(
                    captions=options["captions"], annotations=options["annotations"], synonyms=options["synonyms"]
                )
            elif name == "captions":
                outcome = runners.captions_run(
                    predictions=options["predictions"],
                    references=options["references"],
                    meteor=not options["no_meteor"],
                )
            else:
                if options["batch_size"] < 1:
                    raise runners.InputError("--batch-size must be at least 1")
                questions = runners.pope_read(
                    questions=options["questions"], images=options["images"], limit=options["limit"]
                )
                answerer = runners.model_answerer(
                    model=options["model"], image_dir=options["images"], max_new_tokens=options["max_new_tokens"]
                )
                outcome = runners.pope_run(questions=questions, generate_fn=answerer, batch_size=options["batch_size"])
        except runners.InputError as exc:
            raise CommandError(str(exc)) from exc
        per = "per_question" if name == "pope" else "per_caption"
        body = {"benchmark": name, **outcome.summary, per: outcome.examples}
        self.stdout.write(json.dumps(body, indent=1, default=str))
