"""`GET /api/v1/analytics/summary/?from=&to=&bot=`: the console's analytics figures as JSON.

The serializers below describe the response for the OpenAPI schema; the body itself is
`conversations.analytics.summary()` as it is, the same dict the console page draws.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatbot.models import Bot
from conversations import analytics


class AnalyticsPeriodSerializer(serializers.Serializer):
    from_ = serializers.DateField(help_text="First day, included.")
    to = serializers.DateField(help_text="Day after the last, excluded.")
    days = serializers.IntegerField()
    timezone = serializers.CharField(help_text="Days are UTC days.")

    def get_fields(self):  # type: ignore[no-untyped-def]
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # `from` is a Python keyword
        return fields


class AnalyticsBotRefSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()


class AnalyticsFiguresSerializer(serializers.Serializer):
    messages = serializers.IntegerField()
    questions = serializers.IntegerField(help_text="Visitor messages.")
    answers = serializers.IntegerField(help_text="Bot messages.")
    agent_messages = serializers.IntegerField(help_text="Staff replies.")
    answered = serializers.IntegerField(help_text="Bot messages that answered.")
    answered_rate = serializers.FloatField(allow_null=True, help_text="answered / answers.")
    ratings_up = serializers.IntegerField()
    ratings_down = serializers.IntegerField()
    thumbs_up_ratio = serializers.FloatField(allow_null=True, help_text="up / (up + down).")


class AnalyticsDaySerializer(AnalyticsFiguresSerializer):
    date = serializers.DateField()
    conversations = serializers.IntegerField(help_text="Conversations started that day.")
    latency_p50 = serializers.FloatField(allow_null=True)
    latency_p95 = serializers.FloatField(allow_null=True)
    ttft_p50 = serializers.FloatField(allow_null=True)
    ttft_p95 = serializers.FloatField(allow_null=True)


class AnalyticsTotalsSerializer(AnalyticsFiguresSerializer):
    conversations = serializers.IntegerField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.FloatField(help_text="Estimated from the price table.")


class AnalyticsPercentilesSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class AnalyticsModelUsageSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    answers = serializers.IntegerField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    estimated_answers = serializers.IntegerField(help_text="Answers with estimated tokens.")
    price = serializers.ChoiceField(["list", "unknown"])
    input_per_1m = serializers.FloatField(allow_null=True, help_text="USD per 1M tokens.")
    output_per_1m = serializers.FloatField(allow_null=True, help_text="USD per 1M tokens.")
    cost_usd = serializers.FloatField()


class AnalyticsTopQuestionSerializer(serializers.Serializer):
    question = serializers.CharField(help_text="One spelling of the question, as asked.")
    normalised = serializers.CharField(help_text="Lower case, spacing collapsed: the group.")
    count = serializers.IntegerField()
    answered = serializers.IntegerField()
    answered_share = serializers.FloatField(allow_null=True)


class AnalyticsSummarySerializer(serializers.Serializer):
    period = AnalyticsPeriodSerializer()
    bot = AnalyticsBotRefSerializer(allow_null=True)
    totals = AnalyticsTotalsSerializer()
    latency_ms = AnalyticsPercentilesSerializer()
    ttft_ms = AnalyticsPercentilesSerializer()
    daily = AnalyticsDaySerializer(many=True)
    models = AnalyticsModelUsageSerializer(many=True)
    top_questions = AnalyticsTopQuestionSerializer(many=True)
    prices_as_of = serializers.DateField()


class AnalyticsSummaryView(APIView):
    """The tenant's analytics over a period of UTC days, for all bots or one."""

    @extend_schema(
        operation_id="analytics_summary",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="First day (UTC), included."),
            OpenApiParameter(
                "to",
                OpenApiTypes.DATE,
                description="Day after the last (UTC), excluded. Default: the last "
                f"{analytics.DEFAULT_DAYS} days, today included; at most "
                f"{analytics.MAX_DAYS} days.",
            ),
            OpenApiParameter("bot", str, description="A bot's id (its public id)."),
        ],
        responses=AnalyticsSummarySerializer,
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            period = analytics.parse_period(params.get("from"), params.get("to"))
        except analytics.PeriodError as exc:
            raise ValidationError({exc.param: [exc.message]}) from None
        bot = None
        if params.get("bot"):
            bot = Bot.objects.filter(public_id=params["bot"]).first()
            if bot is None:
                raise NotFound()
        return Response(analytics.summary(period, bot))
