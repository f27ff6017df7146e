"""Builders for the dataset tests: projects with items, responses and annotations of every kind, written
straight to the database (the queue and its pages are tested elsewhere)."""

import itertools

from django.contrib.auth import get_user_model

from annotation import services
from annotation.models import Correction, Item, PairwiseJudgment, Ranking, Rating, Response

_request_ids = itertools.count(1)


def project_with_items(slug: str, kind: str, items: dict[str, list[str]], *, created_by=None, prompt: str = "Q?"):
    """A project whose items (external id → response texts) exist with their responses in order."""
    project = services.project_create(slug=slug, kind=kind, created_by=created_by)
    for external_id, texts in items.items():
        item = Item.objects.create(project=project, external_id=external_id, prompt=f"{prompt} {external_id}")
        Response.objects.bulk_create(
            Response(item=item, position=position, text=text) for position, text in enumerate(texts)
        )
    return project


def people(prefix: str, n: int) -> list:
    model = get_user_model()
    return [model.objects.create_user(username=f"{prefix}{i}", password="x") for i in range(n)]


def responses_of(project, external_id: str) -> list[Response]:
    return list(Response.objects.filter(item__project=project, item__external_id=external_id).order_by("position"))


def _common(item, annotator) -> dict:
    return {"item": item, "annotator": annotator, "client_request_id": f"r{next(_request_ids)}"}


def judge(response_a: Response, response_b: Response, annotator, choice: str, strength: int = 1) -> PairwiseJudgment:
    return PairwiseJudgment.objects.create(
        **_common(response_a.item, annotator),
        response_a=response_a,
        response_b=response_b,
        choice=choice,
        strength=strength,
    )


def correct(response: Response, annotator, segments: list[dict], corrected_text: str) -> Correction:
    return Correction.objects.create(
        **_common(response.item, annotator), response=response, segments=segments, corrected_text=corrected_text
    )


def rate(response: Response, annotator, level: int) -> Rating:
    return Rating.objects.create(**_common(response.item, annotator), response=response, level=level)


def rank(responses_best_first: list[Response], annotator) -> Ranking:
    return Ranking.objects.create(
        **_common(responses_best_first[0].item, annotator), order=[r.pk for r in responses_best_first]
    )


def refresh(project) -> None:
    services.preference_pairs_refresh_project(project=project)
