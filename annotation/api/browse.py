"""REST API: the data browser — a project's items with their answers, annotations, AI feedback and pair
counts, filtered, searched, sorted and paged by cursor; and one item with everything said about it.
Managers and reviewers of the project only (`access_project_for_review`)."""

from urllib.parse import urlencode

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import selectors_browse
from annotation.permissions import access_project_for_review
from annotation.selectors_browse import AGREEMENT, FEEDBACK, MAX_PAGE_SIZE, PAGE_SIZE, SORTS, STATUSES


class BrowseQuerySerializer(serializers.Serializer):
    """The browser's query (the page's form sends the same names)."""

    annotator = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=150, help_text="Username: items they annotated."
    )
    status = serializers.ChoiceField(
        choices=list(STATUSES), required=False, default="", allow_blank=True, help_text="open or done."
    )
    feedback = serializers.ListField(
        child=serializers.ChoiceField(choices=list(FEEDBACK)),
        required=False,
        default=list,
        help_text="Kinds of feedback the item must have (repeat the parameter: all must hold).",
    )
    agreement = serializers.ChoiceField(choices=list(AGREEMENT), required=False, default="", allow_blank=True)
    date_from = serializers.DateField(required=False, default=None, help_text="Annotated on or after (YYYY-MM-DD).")
    date_to = serializers.DateField(required=False, default=None, help_text="Annotated on or before (YYYY-MM-DD).")
    q = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=200,
        help_text="Text in the prompt, an answer or the id.",
    )
    sort = serializers.ChoiceField(choices=list(SORTS), required=False, default="id")
    after = serializers.CharField(required=False, default=None, max_length=1000, help_text="Cursor: the page after.")
    before = serializers.CharField(required=False, default=None, max_length=1000, help_text="Cursor: the page before.")
    limit = serializers.IntegerField(required=False, default=PAGE_SIZE, min_value=1, max_value=MAX_PAGE_SIZE)


def browse_query(params: object) -> tuple[selectors_browse.BrowseFilters, dict]:
    """Checked filters and the paging arguments from query parameters (a 400 naming the field if bad)."""
    query = BrowseQuerySerializer(data=params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    filters = selectors_browse.browse_filters(
        annotator=data["annotator"],
        status=data["status"],
        feedback=data["feedback"],
        agreement=data["agreement"],
        date_from=data["date_from"],
        date_to=data["date_to"],
        search=data["q"],
        sort=data["sort"],
    )
    return filters, {"after": data["after"], "before": data["before"], "limit": data["limit"]}


def page_query(params: object, **cursor: str) -> str:
    """The query string of the same listing with another cursor (`after=` or `before=`)."""
    kept = [(key, value) for key, values in params.lists() if key not in ("after", "before") for value in values]
    return urlencode(kept + list(cursor.items()))


class BrowseClaimOutputSerializer(serializers.Serializer):
    claim = serializers.CharField()
    p_yes = serializers.FloatField(allow_null=True)


class BrowseAIFeedbackOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    response_id = serializers.IntegerField()
    labeler_model = serializers.CharField()
    prompt_version = serializers.CharField()
    score = serializers.FloatField()
    claims = BrowseClaimOutputSerializer(many=True)
    rewrite = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class BrowseResponseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    position = serializers.IntegerField()
    label = serializers.CharField()
    text = serializers.CharField()
    model_name = serializers.CharField(allow_blank=True)
    done_count = serializers.IntegerField()
    ai_feedback = BrowseAIFeedbackOutputSerializer(many=True)


class BrowseDiffPartOutputSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=["same", "del", "ins"])
    text = serializers.CharField()
    type = serializers.CharField(allow_blank=True)


class BrowseReviewOutputSerializer(serializers.Serializer):
    decision = serializers.CharField(help_text="accepted, edited or rejected.")
    reviewer = serializers.CharField()
    comment = serializers.CharField(allow_blank=True)
    stale = serializers.BooleanField(help_text="The annotation changed after it was reviewed.")
    updated_at = serializers.DateTimeField()


class BrowseAnnotationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    annotator = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    time_spent_ms = serializers.IntegerField()
    response_id = serializers.IntegerField(allow_null=True, help_text="The answer judged (correction, rating).")
    summary = serializers.CharField(help_text="The annotation in words, answers named by position.")
    reason = serializers.CharField(allow_blank=True)
    diff = BrowseDiffPartOutputSerializer(many=True, help_text="Correction: kept, struck and inserted text.")
    segments = serializers.ListField(child=serializers.DictField(), help_text="Correction: the marked spans.")
    choice = serializers.CharField(required=False, help_text="Pairwise: a, b, tie or both_bad.")
    preferred_response_id = serializers.IntegerField(required=False, allow_null=True)
    corrected_text = serializers.CharField(required=False)
    level = serializers.IntegerField(required=False, help_text="Rating: index into the project's levels.")
    order = serializers.ListField(child=serializers.IntegerField(), required=False, help_text="Ranking: best first.")
    review = BrowseReviewOutputSerializer(allow_null=True, help_text="The reviewer's latest decision, if any.")


class BrowseItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    prompt = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    done_count = serializers.IntegerField()
    status = serializers.ChoiceField(choices=list(STATUSES))
    responses = BrowseResponseOutputSerializer(many=True)
    annotations = BrowseAnnotationOutputSerializer(many=True)
    agreement = serializers.CharField(allow_blank=True, help_text="disagree, agree, or empty: nothing to compare.")
    has_ai = serializers.BooleanField()
    n_pairs = serializers.IntegerField()


class BrowsePageOutputSerializer(serializers.Serializer):
    results = BrowseItemOutputSerializer(many=True)
    next = serializers.CharField(allow_null=True, help_text="The next page's URL.")
    previous = serializers.CharField(allow_null=True, help_text="The previous page's URL.")
    matches = serializers.IntegerField(help_text="Items matching, counted up to 1000 (200 when filtered).")
    matches_capped = serializers.BooleanField(help_text="More items match than `matches`.")


class BrowseApi(APIView):
    """The project's items with their answers, every annotation (who, when, what), the AI labeler's verdicts
    and how many preference pairs each produced; filtered, searched and sorted, paged by cursor (`next`,
    `previous`). Managers and reviewers of the project."""

    @extend_schema(
        operation_id="projects_browse_list", parameters=[BrowseQuerySerializer], responses=BrowsePageOutputSerializer
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_review(user=request.user, project_slug=slug)
        filters, paging = browse_query(request.query_params)
        page = selectors_browse.browse_page(project=project, filters=filters, **paging)
        here = request.build_absolute_uri(request.path)
        params = request.query_params
        return ApiResponse(
            BrowsePageOutputSerializer(
                {
                    "results": page.rows,
                    "next": f"{here}?{page_query(params, after=page.next_cursor)}" if page.next_cursor else None,
                    "previous": f"{here}?{page_query(params, before=page.previous_cursor)}"
                    if page.previous_cursor
                    else None,
                    "matches": page.matches,
                    "matches_capped": page.matches_capped,
                }
            ).data
        )


class BrowsePairOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    chosen = serializers.CharField(help_text="The chosen answer's label, or 'edited answer'.")
    rejected = serializers.CharField()
    chosen_text = serializers.CharField()
    rejected_text = serializers.CharField()
    margin = serializers.FloatField()
    agreement = serializers.FloatField()
    n_votes = serializers.IntegerField()


class BrowseSuggestionUseOutputSerializer(serializers.Serializer):
    annotator = serializers.CharField()
    annotation_id = serializers.IntegerField()
    labeler_model = serializers.CharField()
    took = serializers.BooleanField()
    rewrite_used = serializers.BooleanField()
    rewrite_edited = serializers.BooleanField(allow_null=True)
    created_at = serializers.DateTimeField()


class BrowseItemDetailOutputSerializer(BrowseItemOutputSerializer):
    meta = serializers.DictField()
    suggestion_uses = BrowseSuggestionUseOutputSerializer(many=True)
    pairs = BrowsePairOutputSerializer(many=True)


class BrowseItemApi(APIView):
    """One item with everything said about it: answers, annotations, the AI labeler's claims with P(yes),
    whether annotators took its suggestions, and the preference pairs the item produced."""

    @extend_schema(operation_id="projects_browse_item_retrieve", responses=BrowseItemDetailOutputSerializer)
    def get(self, request: Request, slug: str, item_id: int) -> ApiResponse:
        project = access_project_for_review(user=request.user, project_slug=slug)
        row = selectors_browse.browse_item(project=project, item_id=item_id)
        if row is None:
            raise Http404("No such item.")
        return ApiResponse(BrowseItemDetailOutputSerializer(row).data)
