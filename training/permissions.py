"""Access checks for training runs and models: starting and watching training is for staff (admins)."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import Http404

from training.models import ModelArtifact, RoundsRun, TrainingRun


def access_training(*, user: AbstractBaseUser | AnonymousUser) -> None:
    """Raise 404 unless `user` may start and watch training runs."""
    if not (user.is_authenticated and user.is_staff):
        raise Http404("No such page.")


def access_training_run(*, user: AbstractBaseUser | AnonymousUser, run_id: int) -> TrainingRun:
    access_training(user=user)
    run = TrainingRun.objects.select_related("snapshot__project", "base_artifact").filter(pk=run_id).first()
    if run is None:
        raise Http404("No such training run.")
    return run


def access_model_artifact(*, user: AbstractBaseUser | AnonymousUser, artifact_id: int) -> ModelArtifact:
    access_training(user=user)
    artifact = ModelArtifact.objects.filter(pk=artifact_id).first()
    if artifact is None:
        raise Http404("No such model.")
    return artifact


def access_rounds_run(*, user: AbstractBaseUser | AnonymousUser, rounds_run_id: int) -> RoundsRun:
    access_training(user=user)
    run = RoundsRun.objects.select_related("project", "base_artifact").filter(pk=rounds_run_id).first()
    if run is None:
        raise Http404("No such rounds run.")
    return run
