"""REST API: the review of annotations (issue 17). A project's reviewers and managers take the next
unreviewed annotation and accept, edit or reject it; every member sees the outcome of their own work."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.api.tasks import ResponseShownSerializer
from annotation.models import ReviewDecision
from annotation.permissions import access_project, access_project_for_review
from annotation.selectors_review import review_outcome, review_payload
from annotation.services.review import MAX_COMMENT_CHARS, review_next, review_submit
from loupe.errors import ApplicationError

MAX_ID = 2**63 - 1


class ReviewDecisionSerializer(serializers.Serializer):
    decision = serializers.CharField()
    comment = serializers.CharField()
    edited = serializers.DictField(allow_null=True)


class ReviewTaskOutputSerializer(serializers.Serializer):
    """An annotation as the review stream shows it."""

    annotation_id = serializers.IntegerField()
    kind = serializers.CharField()
    item_id = serializers.IntegerField()
    external_id = serializers.CharField()
    prompt = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)
    annotator = serializers.CharField(help_text="Who gave the answer.")
    submitted_at = serializers.DateTimeField(help_text="When the answer was last submitted (or amended).")
    responses = ResponseShownSerializer(
        many=True, help_text="The answers judged: pairwise A then B; ranking in the annotator's order, best first."
    )
    answer = serializers.DictField(help_text="The annotator's answer, in the fields the submit API takes.")
    scale = serializers.ListField(
        child=serializers.CharField(), help_text="Rating levels (rating) or hallucination types (correction)."
    )
    review = ReviewDecisionSerializer(allow_null=True, help_text="The current review, if it was reviewed before.")


class ReviewNextApi(APIView):
    """The oldest annotation of the project nobody reviewed yet (never your own); 204 when none is left.
    Reviewers and managers only."""

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, required=False, description="Skip to annotations after this id."),
        ],
        responses={200: ReviewTaskOutputSerializer, 204: OpenApiResponse(description="Nothing left to review.")},
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_review(user=request.user, project_slug=slug)
        after = request.query_params.get("after", "")
        if after and not (after.isdigit() and int(after) <= MAX_ID):
            raise ApplicationError("after must be an annotation id.", {"field": "after"})
        annotation = review_next(project=project, reviewer=request.user, after=int(after) if after else None)
        if annotation is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return ApiResponse(review_payload(project=project, annotation=annotation))


class ReviewSubmitApi(APIView):
    """Accept, edit or reject an annotation. A rejection needs a `comment`; an edit gives `edited`, the
    changed answer in the fields the submit API takes for the kind (correction `segments`, pairwise
    `choice`/`strength`/`reason`, rating `level`, ranking `order`), checked as a submit is. Reviewing an
    annotation again replaces the decision; a repeated `client_request_id` stores nothing new."""

    @extend_schema_serializer(component_name="ReviewSubmitInput")
    class InputSerializer(serializers.Serializer):
        annotation_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
        decision = serializers.ChoiceField(choices=ReviewDecision.values)
        comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=MAX_COMMENT_CHARS)
        edited = serializers.DictField(required=False, allow_null=True, default=None)
        client_request_id = serializers.CharField(
            max_length=64, help_text="Required: an id the client makes once per decision; a repeat stores nothing."
        )

    @extend_schema_serializer(component_name="ReviewSubmitOutput")
    class OutputSerializer(serializers.Serializer):
        annotation_id = serializers.IntegerField()
        kind = serializers.CharField()
        decision = serializers.CharField()
        comment = serializers.CharField()
        edited = serializers.DictField(allow_null=True, help_text="The reviewer's version (edited), else null.")
        reviewer = serializers.CharField()
        replayed = serializers.BooleanField(help_text="True when this request id was seen before.")

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_review(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        reviewed = review_submit(
            project=project,
            reviewer=request.user,
            annotation_id=given["annotation_id"],
            decision=given["decision"],
            comment=given["comment"],
            edited=given["edited"],
            client_request_id=given["client_request_id"],
        )
        review = reviewed.review
        body = {
            "annotation_id": review.annotation_id,
            "kind": review.kind,
            "decision": review.decision,
            "comment": review.comment,
            "edited": review.edited or None,
            "reviewer": review.reviewer.username,
            "replayed": reviewed.replayed,
        }
        return ApiResponse(body, status=status.HTTP_201_CREATED)


class MyReviewsApi(APIView):
    """What reviewers decided on your work in this project: counts per decision and your latest reviewed
    answers (newest first) with the reviewers' comments."""

    @extend_schema_serializer(component_name="MyReviewsOutput")
    class OutputSerializer(serializers.Serializer):
        class ReviewedSerializer(serializers.Serializer):
            annotation_id = serializers.IntegerField()
            external_id = serializers.CharField()
            prompt = serializers.CharField()
            decision = serializers.CharField()
            comment = serializers.CharField()
            edited = serializers.DictField(allow_null=True)
            reviewer = serializers.CharField()
            reviewed_at = serializers.DateTimeField()
            stale = serializers.BooleanField(help_text="You changed this answer after the review.")

        accepted = serializers.IntegerField()
        edited = serializers.IntegerField()
        rejected = serializers.IntegerField()
        reviews = ReviewedSerializer(many=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        return ApiResponse(self.OutputSerializer(review_outcome(project=project, annotator=request.user)).data)
