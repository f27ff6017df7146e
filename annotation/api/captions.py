"""REST API: a rating project's live caption table and its caption-contest CSV (managers)."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.models import Item, ProjectKind
from annotation.permissions import access_project_for_management
from annotation.selectors_captions import CAPTION_SORTS, MAX_PAGE, caption_contest_csv, caption_table
from loupe.errors import ApplicationError


def _rating_project(*, user, slug: str):  # noqa: ANN001, ANN202 — a request's user; the project
    project = access_project_for_management(user=user, project_slug=slug)
    if project.kind != ProjectKind.RATING:
        raise ApplicationError("Only rating projects have a caption table.", {"field": "slug"})
    return project


class CaptionTableApi(APIView):
    """The captions of a rating project with their votes as they stand: counts per level, mean, precision
    (standard error), 95% interval and rank; sorted, searched and paginated here."""

    @extend_schema_serializer(component_name="CaptionTableQuery")
    class InputSerializer(serializers.Serializer):
        sort = serializers.ChoiceField(choices=CAPTION_SORTS, required=False, default="rank")
        q = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        offset = serializers.IntegerField(min_value=0, required=False, default=0)
        limit = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, required=False, default=50)

    @extend_schema_serializer(component_name="CaptionRow")
    class RowSerializer(serializers.Serializer):
        response_id = serializers.IntegerField()
        item_id = serializers.IntegerField()
        caption = serializers.CharField()
        counts = serializers.DictField(child=serializers.IntegerField(), help_text="Votes per level.")
        summary_votes = serializers.IntegerField(help_text="Votes an import gave only as a mean and precision.")
        votes = serializers.IntegerField()
        mean = serializers.FloatField(allow_null=True)
        precision = serializers.FloatField(allow_null=True, help_text="Standard error of the mean.")
        ci_low = serializers.FloatField(allow_null=True)
        ci_high = serializers.FloatField(allow_null=True)
        rank = serializers.IntegerField()

    @extend_schema_serializer(component_name="CaptionTableOutput")
    class OutputSerializer(serializers.Serializer):
        total = serializers.IntegerField(help_text="Captions that match the search.")
        offset = serializers.IntegerField()
        limit = serializers.IntegerField()
        levels = serializers.ListField(child=serializers.CharField())
        rows = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        parameters=[
            OpenApiParameter("sort", str, enum=list(CAPTION_SORTS), description="A leading - reverses."),
            OpenApiParameter("q", str, description="Search in caption text."),
            OpenApiParameter("offset", int),
            OpenApiParameter("limit", int, description=f"1 to {MAX_PAGE}."),
        ],
        responses={200: OutputSerializer},
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = _rating_project(user=request.user, slug=slug)
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        table = caption_table(
            project=project,
            sort=query.validated_data["sort"],
            search=query.validated_data["q"],
            offset=query.validated_data["offset"],
            limit=query.validated_data["limit"],
        )
        return ApiResponse(self.OutputSerializer(table).data)


class CaptionExportApi(APIView):
    """A cartoon's captions as a caption-contest CSV (the contest's own columns, ranked by mean), with the
    votes as they stand now. `item` (the item's external id) may be left out when the project has one."""

    @extend_schema(
        parameters=[OpenApiParameter("item", str, description="The item's external id.")],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The caption-contest table."),
        },
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        project = _rating_project(user=request.user, slug=slug)
        external_id = request.query_params.get("item", "")
        items = Item.objects.filter(project=project).order_by("id")
        if external_id:
            item = items.filter(external_id=external_id).first()
            if item is None:
                raise ApplicationError(f"This project has no item {external_id!r}.", {"field": "item"})
        else:
            first_two = list(items[:2])
            if len(first_two) != 1:
                raise ApplicationError(
                    "Name the item (its external id): a caption-contest table holds one cartoon's captions."
                    if first_two
                    else "This project has no captions yet.",
                    {"field": "item"},
                )
            item = first_two[0]
        try:
            text = caption_contest_csv(project=project, item=item)
        except ValueError as error:
            raise ApplicationError(str(error), {"field": "rating_levels"}) from error
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.external_id) or "captions"
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{name}.csv"'
        return response
