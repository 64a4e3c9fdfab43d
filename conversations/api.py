"""REST API of conversations: `/api/v1/conversations/…` and message feedback.

Looked up in the request's tenant schema only: another tenant's ids are 404.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatbot.api import as_drf_error
from conversations import services
from conversations.models import Conversation, Message


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id", "role", "content", "sources", "answered", "provider", "model", "tokens_in",
            "tokens_out", "tokens_estimated", "latency_ms", "ttft_ms", "error", "rating",
            "feedback_comment", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ConversationSerializer(serializers.ModelSerializer):
    bot = serializers.CharField(source="bot.public_id", read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id", "bot", "visitor_id", "channel", "status", "title", "message_count",
            "unanswered_count", "thumbs_up", "thumbs_down", "created_at", "last_message_at",
        ]  # fmt: skip
        read_only_fields = fields


class ConversationDetailSerializer(ConversationSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "messages"]
        read_only_fields = fields


class ConversationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ConversationSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        rows = Conversation.objects.select_related("bot").order_by("-created_at", "pk")
        if self.action == "list":
            bot = self.request.query_params.get("bot")
            if bot:
                rows = rows.filter(bot__public_id=bot)
            for name in ("channel", "status", "visitor_id"):
                value = self.request.query_params.get(name)
                if value:
                    rows = rows.filter(**{name: value})
        else:
            rows = rows.prefetch_related("messages")
        return rows

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return ConversationDetailSerializer if self.action == "retrieve" else ConversationSerializer

    def get_object(self) -> Conversation:
        if services.uuid_or_none(self.kwargs["pk"]) is None:
            from rest_framework.exceptions import NotFound

            raise NotFound()
        return super().get_object()

    @extend_schema(
        parameters=[
            OpenApiParameter("bot", str, description="A bot's id (its public id)."),
            OpenApiParameter("channel", str, enum=Conversation.Channel.values),
            OpenApiParameter("status", str, enum=Conversation.Status.values),
            OpenApiParameter("visitor_id", str),
        ]
    )
    def list(self, request: Request, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        return super().list(request, *args, **kwargs)

    def perform_destroy(self, instance: Conversation) -> None:
        services.delete_conversations([instance])


class FeedbackSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=["up", "down"])
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class MessageFeedbackView(APIView):
    @extend_schema(request=FeedbackSerializer, responses=MessageSerializer)
    def post(self, request: Request, pk: str) -> Response:
        """Rate an answer up or down, with an optional comment."""
        message = get_object_or_404(Message.objects.all(), pk=services.uuid_or_none(pk))
        payload = FeedbackSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            services.record_feedback(
                message, payload.validated_data["rating"], payload.validated_data.get("comment", "")
            )
        except DjangoValidationError as exc:
            raise as_drf_error(exc) from None
        return Response(MessageSerializer(message).data)
