"""REST API: a project's agreement report (per project and per annotator, the AI labeler listed as one), for its
managers and reviewers."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from annotation.permissions import access_project_for_review
from annotation.selectors_agreement import agreement_report_cached


@extend_schema_serializer(component_name="AgreementMeasure")
class AgreementMeasureSerializer(serializers.Serializer):
    description = serializers.CharField()
    level = serializers.CharField(help_text="nominal or ordinal values, or spans or ranks (pair statistics).")


@extend_schema_serializer(component_name="AgreementAnnotator")
class AgreementAnnotatorSerializer(serializers.Serializer):
    annotator = serializers.CharField(help_text="The username, or 'AI labeler MODEL'.")
    labeler_model = serializers.CharField(allow_null=True, help_text="The AI labeler's model; null for a person.")
    measures = serializers.DictField(
        child=serializers.DictField(allow_null=True),
        help_text="Per measure, this annotator against the other people on the units they share (null: a measure "
        "the AI labeler takes no part in).",
    )


class ProjectAgreementApi(APIView):
    """The project's agreement: per measure of its kind, people with each other (`people`) and each annotator
    against the other people (`annotators`, the AI labeler models last, measured the same way). Figures: `units`
    and `pairs` compared, `percent_agreement`, Krippendorff's `alpha` (`alpha_interval` for ratings), Cohen's
    `cohen_kappa` (among people: the mean over rater pairs) and `fleiss_kappa` for nominal measures,
    `segment_f1`, `type_f1` and `character_f1` for corrections' spans, `kendall_tau` and `spearman_rho` for
    rankings; null where there is nothing to compute on. Managers and reviewers only."""

    @extend_schema_serializer(component_name="ProjectAgreementOutput")
    class OutputSerializer(serializers.Serializer):
        project = serializers.SlugField()
        kind = serializers.CharField()
        measures = serializers.DictField(child=AgreementMeasureSerializer())
        people = serializers.DictField(child=serializers.DictField(), help_text="Per measure, among people.")
        annotators = AgreementAnnotatorSerializer(many=True)

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request, slug: str) -> ApiResponse:
        project = access_project_for_review(user=request.user, project_slug=slug)
        return ApiResponse(self.OutputSerializer(agreement_report_cached(project=project)).data)
