"""REST API: gold tasks (known answers mixed into the queue) and each annotator's trust (managers only).

The gold answers' shapes per kind are in `annotation.gold_rules`; annotators never see them: their tasks
come from the task API like any other.
"""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.models import GoldAnswer, Project
from annotation.permissions import access_project_for_management
from annotation.selectors_trust import trust_summary
from annotation.services.gold import GoldEntry, gold_answers_set, gold_rate_set


@extend_schema_serializer(component_name="GoldTask")
class GoldTaskSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=200)
    response = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text="Correction and rating: the position of the response judged (optional if the item has one).",
    )
    answer = serializers.DictField(
        allow_null=True,
        help_text='The known answer, e.g. pairwise {"choice": "a"} (a: the first response), rating {"level": 2}, '
        'ranking {"order": [1, 0, 2]}, correction {"hallucination": true, "segments": [{"text": "red"}]}; '
        "null makes the task an ordinary one again.",
    )


class GoldOutputSerializer(serializers.Serializer):
    gold_rate = serializers.FloatField()
    items = GoldTaskSerializer(many=True)


def _gold_body(project: Project) -> dict:
    rows = (
        GoldAnswer.objects.filter(project=project)
        .order_by("item__external_id", "response__position")
        .values_list("item__external_id", "response__position", "answer")
    )
    return {
        "gold_rate": project.gold_rate,
        "items": [{"external_id": key, "response": position, "answer": answer} for key, position, answer in rows],
    }


class GoldApi(APIView):
    """The project's gold tasks and gold rate (GET); mark items gold with their known answers, unmark them,
    or set the rate (POST, all or nothing)."""

    @extend_schema_serializer(component_name="GoldSetInput")
    class InputSerializer(serializers.Serializer):
        gold_rate = serializers.FloatField(
            required=False, min_value=0.0, max_value=1.0, help_text="Fraction of the tasks served that are gold."
        )
        items = GoldTaskSerializer(many=True, required=False, default=list)

    @extend_schema(responses=GoldOutputSerializer)
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        return ApiResponse(_gold_body(project))

    @extend_schema(request=InputSerializer, responses=GoldOutputSerializer)
    def post(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        gold_answers_set(
            project=project,
            entries=[
                GoldEntry(
                    external_id=entry["external_id"],
                    answer=entry["answer"],
                    response=entry["response"],
                    field=f"items[{index}]",
                )
                for index, entry in enumerate(given["items"])
            ],
        )
        if "gold_rate" in given:
            gold_rate_set(project=project, gold_rate=given["gold_rate"])
        return ApiResponse(_gold_body(project))


class AnnotatorTrustSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    crowd = serializers.BooleanField(help_text="An anonymous participant of a public project.")
    answers = serializers.IntegerField()
    gold_graded = serializers.IntegerField(help_text="Gold tasks answered (and gradable).")
    gold_right = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True, help_text="gold_right / gold_graded; null before any.")
    trust = serializers.FloatField(help_text="(gold_right + prior.right) / (gold_graded + prior.right + prior.wrong).")
    median_time_ms = serializers.IntegerField(allow_null=True)
    flags = serializers.ListField(child=serializers.CharField(), help_text="straight_lining, too_fast.")


class TrustOutputSerializer(serializers.Serializer):
    gold_rate = serializers.FloatField()
    gold_tasks = serializers.IntegerField()
    prior = serializers.DictField(child=serializers.FloatField(), help_text="The Beta prior: right, wrong.")
    rules = serializers.DictField(child=serializers.IntegerField(), help_text="The thresholds of the flags.")
    annotators = AnnotatorTrustSerializer(many=True)


class TrustApi(APIView):
    """Per annotator: answers, accuracy on gold tasks, trust score and crowd-abuse flags (managers only)."""

    @extend_schema(responses=TrustOutputSerializer)
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_management(user=request.user, project_slug=slug)
        return ApiResponse(TrustOutputSerializer(trust_summary(project=project)).data)
