"""REST API: The task queue: next task and submit."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation import selectors, services
from annotation.models import Assignment
from annotation.permissions import access_project


class TaskOutputSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    item_id = serializers.IntegerField()
    prompt = serializers.CharField()
    image_url = serializers.CharField(allow_null=True)
    responses = serializers.ListField(child=serializers.DictField())
    lease_expires_at = serializers.DateTimeField()


def task_payload(assignment: Assignment) -> dict:
    item = assignment.item
    return {
        "assignment_id": assignment.pk,
        "item_id": item.pk,
        "prompt": item.prompt,
        "image_url": reverse("item-image", args=[item.pk]) if item.image else None,
        "responses": [
            {"id": response.pk, "text": response.text}
            for response in selectors.assignment_responses_shown(assignment=assignment)
        ],
        "lease_expires_at": assignment.lease_expires_at,
    }


class TaskNextApi(APIView):
    @extend_schema(request=None, responses={200: TaskOutputSerializer, 204: None})
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project(user=request.user, project_slug=slug)
        assignment = services.assignment_next(project=project, annotator=request.user)
        if assignment is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return ApiResponse(TaskOutputSerializer(task_payload(assignment)).data)


class TaskSubmitApi(APIView):
    parser_classes = [JSONParser, FormParser]

    class InputSerializer(serializers.Serializer):
        choice = serializers.CharField()
        strength = serializers.IntegerField(required=False, default=1)
        reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=5000)
        client_request_id = serializers.CharField(max_length=64)
        time_spent_ms = serializers.IntegerField(required=False, default=0, min_value=0)

    @extend_schema(request=InputSerializer, responses={201: None})
    def post(self, request: Request, slug: str, assignment_id: int) -> ApiResponse:
        access_project(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        judgment = services.pairwise_judgment_submit(
            assignment_id=assignment_id, annotator=request.user, **data.validated_data
        )
        return ApiResponse({"id": judgment.pk, "choice": judgment.choice}, status=status.HTTP_201_CREATED)
