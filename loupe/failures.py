"""How a background job's failure is written and shown: the traceback stays in the job's log for staff (the
admin shows it whole), users see the cause in one line, without tracebacks or the server's folders.

Every kind of job (training runs, data jobs, labeler jobs, benchmark runs) writes its failure with
`failure_log` and shows logs to project managers through `log_for_users`."""

import re
import traceback

# The line a worker (or a reaper) writes when a job fails: its cause in one line, after the traceback.
FAILURE_PREFIX = "[loupe] failed: "
CAUSE_MAX_CHARS = 300

# An absolute path of at least two parts (`/srv/loupe/var/jobs/job-3/source-a.jsonl`), not the path of a URL
# (`https://host/a/b`: preceded by a host or `:/`). Users see its last part only.
_SERVER_PATH = re.compile(r"(?<![\w:/.\-])/(?:[^\s/'\"<>():,]+/)+([^\s/'\"<>():,]*)")
_TRACEBACK_START = "Traceback (most recent call last):"
_TRACEBACK_LINKS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)


def paths_hidden(text: str) -> str:
    """`text` with every server path reduced to its file name (a path ending in `/` is left as it is)."""
    return _SERVER_PATH.sub(lambda match: match.group(1) or match.group(0), text)


def failure_cause(error: BaseException) -> str:
    """An exception in one line for users: its type and the first line of its message, paths reduced to names."""
    message = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    cause = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return paths_hidden(cause)[:CAUSE_MAX_CHARS]


def failure_log(error: BaseException) -> str:
    """What a job's log gets when `error` ended it: the traceback (for staff), then the cause line."""
    details = "".join(traceback.format_exception(error))
    return f"{details}{FAILURE_PREFIX}{failure_cause(error)}\n"


def failure_cause_in(log: str) -> str | None:
    """The cause of a failure as its log says it (the last `[loupe] failed:` line), or None."""
    causes = [line.strip().removeprefix(FAILURE_PREFIX) for line in log.splitlines() if line.startswith(FAILURE_PREFIX)]
    return causes[-1] if causes else None


def log_for_users(log: str) -> str:
    """A job's log as project managers see it: tracebacks left out and server paths reduced to file names.
    Staff read the whole log in the admin.

    A traceback runs until the next `[loupe]` line (an exception's message may span lines). The
    `[loupe] failed:` line written after it says what failed; a traceback without one (an older log) is
    replaced by its exception's line as the cause."""
    shown: list[str] = []
    exception_line: str | None = None
    in_traceback = after_frames = False
    for line in log.splitlines(keepends=True):
        bare = line.strip()
        if bare == _TRACEBACK_START or bare in _TRACEBACK_LINKS:
            in_traceback, after_frames = True, False
            continue
        if in_traceback and not line.startswith("[loupe]"):
            if line[:1].isspace():
                after_frames = True
            elif bare and after_frames:
                exception_line, after_frames = bare, False  # the first line of the exception's message
            continue
        if in_traceback and not line.startswith(FAILURE_PREFIX) and exception_line:
            shown.append(f"{FAILURE_PREFIX}{paths_hidden(exception_line)}\n")
        in_traceback, exception_line = False, None
        shown.append(paths_hidden(line))
    if in_traceback and exception_line:
        shown.append(f"{FAILURE_PREFIX}{paths_hidden(exception_line)}\n")
    return "".join(shown)
