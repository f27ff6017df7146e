"""Access checks for benchmark runs.

Starting, cancelling and reading runs is for staff (admins), as for training runs: a run's config names folders
and files on the server and its examples show model outputs on evaluation data. Researchers who are not staff do
not see runs (they get a 404, as for any page they may not see); a finished run's numbers reach them through staff.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404

from evaluation.models import BenchmarkRun


def access_benchmarks(*, user: AbstractBaseUser | AnonymousUser) -> None:
    """Raise 404 unless `user` may start and see benchmark runs (and the leaderboard)."""
    if not user.is_authenticated:
        raise Http404("No such page.")
    if not user.is_staff:
        raise Http404("No such page.")


def access_benchmark_run(*, user: AbstractBaseUser | AnonymousUser, run_id: int) -> BenchmarkRun:
    access_benchmarks(user=user)
    run = BenchmarkRun.objects.select_related("model").filter(pk=run_id).first()
    if run is None:
        raise Http404("No such benchmark run.")
    return run
