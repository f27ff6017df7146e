"""`python -m training.launch RUN_ID [--resume]`: train one queued-and-claimed run, possibly across processes.

A training worker runs this under the launcher named by ``LOUPE_TRAIN_LAUNCHER`` (e.g. ``accelerate launch
--multi_gpu --num_processes 4``): every process trains, the main one reports progress and log lines to the
run's rows and writes ``result.json`` for the worker, which then registers the output. More GPUs are thus a
matter of environment, not code. The worker has already written the run's data files and keeps its heartbeat.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings.base")
    import django

    django.setup()
    # Each process needs its rank known before the trainers start; accelerate's state knows it from the env.
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from training.core import NullHooks, is_main_process
    from training.services import RESULT_FILE, DatabaseHooks, training_run_train

    # PartialState reads ACCELERATE_USE_CPU only when told (Accelerator does it itself): without it, CPU processes
    # (gloo) would each see a single-process state, and PPO and best-of-N would not share their work.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    try:
        # Only the main process reports; the others learn whether to stop from it (training.core.agree_to_stop).
        hooks = DatabaseHooks(args.run_id) if is_main_process() else NullHooks()
        result, output_dir = training_run_train(run_id=args.run_id, resume=args.resume, hooks=hooks)
        if is_main_process():
            (output_dir / RESULT_FILE).write_text(
                json.dumps(
                    {
                        "steps": result.steps,
                        "stopped_early": result.stopped_early,
                        "output_dir": str(result.output_dir),
                        "metrics": result.metrics,
                    }
                ),
                encoding="utf-8",
            )
    finally:
        # A process group left to the interpreter's shutdown can abort the process (SIGABRT, "terminate called
        # without an active exception"): gloo's threads may still hold tensors when Python is torn down
        # (pytorch/pytorch#179291), and a run whose training succeeded would then be reported as crashed.
        state.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
