"""REST API of the chatbot app: who am I, bots, search, and chat.

A bot's `id` in every URL and response is its public id; objects are looked up in the
request's tenant schema only, so another tenant's ids are 404.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatbot import answering, limits, services
from chatbot.api_errors import error_body
from chatbot.models import Bot
from conversations import services as conversations
from conversations.models import Conversation
from knowledge.models import KnowledgeBase


def as_drf_error(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


class MeView(APIView):
    """Who is calling: the tenant and the API key's name."""

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "tenant": inline_serializer(
                    "MeTenant", {"schema": serializers.CharField(), "name": serializers.CharField()}
                ),
                "key": inline_serializer(
                    "MeKey", {"name": serializers.CharField(), "prefix": serializers.CharField()}
                ),
            },
        )
    )
    def get(self, request: Request) -> Response:
        tenant = connection.tenant
        key = request.auth
        return Response(
            {
                "tenant": {"schema": tenant.schema_name, "name": tenant.name},
                "key": {"name": key.name, "prefix": key.prefix},
            }
        )


# --- Bots -------------------------------------------------------------------------------
class BotSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    knowledge_bases = serializers.PrimaryKeyRelatedField(
        many=True, queryset=KnowledgeBase.objects.all(), required=False
    )
    # Write-only: a saved key is never returned, only whether there is one.
    api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )
    clear_api_key = serializers.BooleanField(write_only=True, required=False, default=False)
    has_api_key = serializers.SerializerMethodField()
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)

    class Meta:
        model = Bot
        fields = [
            "id", "name", "knowledge_bases", "system_prompt", "greeting", "provider", "model",
            "base_url", "api_key", "clear_api_key", "has_api_key", "temperature",
            "max_output_tokens", "top_k", "relevance_threshold", "fallback_message",
            "memory_tokens", "answer_in_visitor_language", "offer_handoff",
            "handoff_after_failures", "allowed_origins", "title", "color", "avatar_url",
            "position", "suggested_questions", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]

    def get_has_api_key(self, bot: Bot) -> bool:
        return bool(bot.api_key)

    def to_representation(self, bot: Bot) -> dict[str, Any]:
        data = super().to_representation(bot)
        data["model"] = bot.effective_model
        return data


class SearchSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    top_k = serializers.IntegerField(min_value=1, max_value=50, required=False)


class ChatSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=conversations.MAX_MESSAGE_CHARS)
    conversation_id = serializers.UUIDField(required=False, allow_null=True)
    visitor_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", required=False)


SOURCE_FIELDS = {
    "number": serializers.IntegerField(),
    "title": serializers.CharField(),
    "url": serializers.CharField(),
    "heading_path": serializers.ListField(child=serializers.CharField()),
    "snippet": serializers.CharField(),
    "score": serializers.FloatField(),
}
CHAT_RESPONSE = inline_serializer(
    "ChatAnswer",
    {
        "conversation_id": serializers.UUIDField(),
        "message_id": serializers.UUIDField(),
        "answer": serializers.CharField(),
        "answered": serializers.BooleanField(),
        "handoff": serializers.BooleanField(),
        "sources": inline_serializer("ChatSource", SOURCE_FIELDS, many=True),
    },
)


def quota_response(exc: limits.QuotaExceeded) -> Response:
    response = Response(
        error_body("quota_exceeded", exc.message, {"quota": exc.kind}),
        status=status.HTTP_429_TOO_MANY_REQUESTS,
    )
    if exc.retry_after:
        response["Retry-After"] = str(exc.retry_after)
    return response


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept `Accept: text/event-stream`; the chat view then
    answers with a streaming response of its own."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):  # type: ignore[no-untyped-def]
        return json.dumps(data).encode()


def sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def event_stream(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield sse(event)


class BotViewSet(viewsets.ModelViewSet):
    serializer_class = BotSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Bot.objects.prefetch_related("knowledge_bases").order_by("name", "pk")

    def perform_create(self, serializer: BotSerializer) -> None:
        serializer.instance = self._save(None, serializer.validated_data)

    def perform_update(self, serializer: BotSerializer) -> None:
        serializer.instance = self._save(serializer.instance, serializer.validated_data)

    def _save(self, bot: Bot | None, data: dict[str, Any]) -> Bot:
        try:
            return services.save_bot(bot, data)
        except DjangoValidationError as exc:
            raise as_drf_error(exc) from None

    def perform_destroy(self, instance: Bot) -> None:
        services.delete_bot(instance)

    @extend_schema(
        request=SearchSerializer,
        responses=inline_serializer(
            "BotSearchResults", {"results": serializers.ListField(child=serializers.DictField())}
        ),
    )
    @action(detail=True, methods=["post"])
    def search(self, request: Request, id: str | None = None) -> Response:
        """Hybrid retrieval over the bot's knowledge bases, with the bot's threshold."""
        from knowledge.retrieval import retrieve

        bot = self.get_object()
        payload = SearchSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        results = retrieve(
            list(bot.knowledge_bases.all()),
            payload.validated_data["query"],
            top_k=payload.validated_data.get("top_k") or bot.top_k,
            threshold=bot.relevance_threshold,
        )
        return Response({"results": [result.as_dict() for result in results]})

    @extend_schema(
        request=ChatSerializer,
        responses={
            200: OpenApiResponse(
                CHAT_RESPONSE,
                description="With `Accept: text/event-stream`: server-sent events "
                "`conversation`, `token`…, `sources`, `done` (or `error`).",
            ),
            404: None,
            502: None,
        },
    )
    @action(
        detail=True,
        methods=["post"],
        renderer_classes=[renderers.JSONRenderer, EventStreamRenderer],
    )
    def chat(self, request: Request, id: str | None = None):  # type: ignore[no-untyped-def]
        """Ask the bot; continue a conversation with its `conversation_id`."""
        bot = self.get_object()
        payload = ChatSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        conversation_id = str(data["conversation_id"]) if data.get("conversation_id") else None
        if conversation_id and not bot.conversations.filter(pk=conversation_id).exists():
            raise NotFound()
        kwargs = {
            "tenant": connection.tenant,
            "bot_id": bot.pk,
            "text": data["message"].strip(),
            "visitor_id": data.get("visitor_id", ""),
            "channel": Conversation.Channel.API,
            "conversation_id": conversation_id,
        }
        try:
            limits.check_message_quota(
                connection.tenant, llm=bot.provider != Bot.Provider.EXTRACTIVE
            )
        except limits.QuotaExceeded as exc:
            return quota_response(exc)
        if request.accepted_renderer.media_type == EventStreamRenderer.media_type:
            response = StreamingHttpResponse(
                event_stream(answering.answer_stream(**kwargs)), content_type="text/event-stream"
            )
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
            return response
        try:
            result = async_to_sync(answering.answer)(**kwargs)
        except limits.QuotaExceeded as exc:  # used up by a concurrent request meanwhile
            return quota_response(exc)
        error = result.pop("error")
        if error and not result.get("answer"):
            body = error_body(
                "provider_error",
                error["message"],
                {k: result.get(k) for k in ("conversation_id", "message_id")},
            )
            return Response(body, status=status.HTTP_502_BAD_GATEWAY)
        return Response(result)
