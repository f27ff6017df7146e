"""The data browser of a project (`projects/<slug>/data/`) and its task page (`.../data/<item_id>/`), for the
project's managers and reviewers. Server-rendered from `selectors_browse`; the filters are a GET form read
by the same checks as the API (`annotation.api.browse.browse_query`); `loupe/browse.js` adds j/k/Enter."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import ValidationError

from annotation import selectors_browse
from annotation.api.browse import browse_query, page_query
from annotation.models import ProjectKind
from annotation.permissions import access_project_for_review, is_manager
from loupe.errors import ApplicationError

# Feedback filters that mean something for each kind of project.
FEEDBACK_BY_KIND = {
    ProjectKind.CORRECTION: ("human", "no_human", "ai", "no_ai", "correction", "pairs"),
}
COMMON_FEEDBACK = ("human", "no_human", "ai", "no_ai", "pairs")
FILTER_NAMES = ("annotator", "status", "feedback", "agreement", "date_from", "date_to", "q")


def _problems(error: ValidationError) -> list[str]:
    detail = error.detail if isinstance(error.detail, dict) else {"query": error.detail}
    return [f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in detail.items()]


@login_required
def browse_page(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project_for_review(user=request.user, project_slug=slug)
    problems: list[str] = []
    page = None
    sort = request.GET.get("sort", "id")
    try:
        filters, paging = browse_query(request.GET)
        sort = filters.sort
        page = selectors_browse.browse_page(project=project, filters=filters, **paging)
    except ValidationError as error:
        problems = _problems(error)
    except ApplicationError as error:
        problems = [error.message]
    params = request.GET
    # The sort links keep the filters and start again at the first page.
    # A column heading sorts by it, and again the other way; the filters stay, paging starts again.
    sort_targets = {
        "item": "-external_id" if sort == "external_id" else "external_id",
        "order": "-id" if sort == "id" else "id",
        "annotations": "annotations" if sort == "-annotations" else "-annotations",
    }
    unsorted = _without(params, "sort")
    sort_links = {name: page_query(unsorted, sort=target) for name, target in sort_targets.items()}
    context = {
        "project": project,
        "page": page,
        "problems": problems,
        "params": params,
        "sort": sort,
        "sort_links": sort_links,
        "sort_label": selectors_browse.SORT_LABELS.get(sort, sort),
        "sorts": selectors_browse.SORT_LABELS,
        "statuses": selectors_browse.STATUSES,
        "feedback_choices": {
            key: selectors_browse.FEEDBACK[key] for key in FEEDBACK_BY_KIND.get(project.kind, COMMON_FEEDBACK)
        },
        "feedback_chosen": params.getlist("feedback"),
        "agreements": selectors_browse.AGREEMENT,
        "members": selectors_browse.browse_members(project=project),
        "next_query": page_query(params, after=page.next_cursor) if page and page.next_cursor else None,
        "previous_query": page_query(params, before=page.previous_cursor) if page and page.previous_cursor else None,
        "filtered": any(params.get(key) for key in FILTER_NAMES),
        "here": params.urlencode(),
        "manager": is_manager(user=request.user, project=project),
    }
    return render(request, "annotation/browse.html", context, status=400 if problems else 200)


def _without(params, key: str):  # noqa: ANN001, ANN202 — a QueryDict in, a QueryDict out
    copy = params.copy()
    copy.pop(key, None)
    return copy


@login_required
def browse_item_page(request: HttpRequest, slug: str, item_id: int) -> HttpResponse:
    project = access_project_for_review(user=request.user, project_slug=slug)
    row = selectors_browse.browse_item(project=project, item_id=item_id)
    if row is None:
        raise Http404("No such item in this project.")
    return render(
        request,
        "annotation/browse_item.html",
        # `back` is the browser's query string (never a URL): the page links to the browser with it.
        {"project": project, "item": row, "back": request.GET.get("back", "")},
    )
