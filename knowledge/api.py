"""REST API of the knowledge app (`/api/v1/knowledge-bases/…`, `/api/v1/sources/…`).

Objects are looked up in the request's tenant schema only, so another tenant's ids are 404.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from knowledge import services
from knowledge.models import Document, KnowledgeBase, Source


def as_drf_error(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


class KnowledgeBaseSerializer(serializers.ModelSerializer):
    embedder_api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )
    has_embedder_api_key = serializers.SerializerMethodField()
    sources = serializers.IntegerField(read_only=True, source="source_count", default=0)

    class Meta:
        model = KnowledgeBase
        fields = [
            "id", "name", "description", "chunk_tokens", "chunk_overlap", "embedder",
            "embedder_api_key", "has_embedder_api_key", "sources", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]

    def get_has_embedder_api_key(self, kb: KnowledgeBase) -> bool:
        return bool(kb.embedder_api_key)

    def validate_chunk_tokens(self, value: int) -> int:
        if not 32 <= value <= 2000:
            raise serializers.ValidationError("Between 32 and 2000 tokens.")
        return value

    def validate(self, attrs: dict) -> dict:
        size = attrs.get("chunk_tokens", getattr(self.instance, "chunk_tokens", 200))
        if attrs.get("chunk_overlap", 0) >= size:
            raise serializers.ValidationError({"chunk_overlap": "Must be smaller than the chunk."})
        embedder = attrs.get("embedder", getattr(self.instance, "embedder", "minilm"))
        key = attrs.get("embedder_api_key") or getattr(self.instance, "embedder_api_key", "")
        if embedder.startswith("openai:") and not key:
            raise serializers.ValidationError(
                {"embedder_api_key": "OpenAI embeddings need an OpenAI API key."}
            )
        return attrs


class SourceSerializer(serializers.ModelSerializer):
    knowledge_base = serializers.PrimaryKeyRelatedField(read_only=True)
    progress = serializers.IntegerField(read_only=True)

    class Meta:
        model = Source
        fields = [
            "id", "knowledge_base", "kind", "title", "config", "status", "progress",
            "documents_total", "documents_done", "documents_failed", "chunks",
            "documents_fetched", "documents_indexed", "documents_unchanged",
            "documents_removed", "error", "schedule", "cancel_requested", "last_synced_at",
            "created_at", "updated_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = [
            "id", "source", "title", "url", "mime_type", "status", "outcome", "error", "size",
            "chunk_count", "content_hash", "metadata", "fetched_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class QAPairSerializer(serializers.Serializer):
    question = serializers.CharField(max_length=2000)
    answer = serializers.CharField(max_length=20000)


class NewSourceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["text", "qa", "url", "urls", "sitemap", "crawl"])
    title = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    pairs = QAPairSerializer(many=True, required=False)
    url = serializers.CharField(required=False, max_length=2048)
    urls = serializers.ListField(child=serializers.CharField(max_length=2048), required=False)
    max_pages = serializers.IntegerField(required=False, min_value=1, max_value=50_000)
    max_depth = serializers.IntegerField(required=False, min_value=0, max_value=20)
    include = serializers.ListField(child=serializers.CharField(max_length=500), required=False)
    exclude = serializers.ListField(child=serializers.CharField(max_length=500), required=False)
    schedule = serializers.ChoiceField(choices=["off", "daily", "weekly"], default="off")

    def validate(self, attrs: dict) -> dict:
        kind = attrs["kind"]
        if kind == "text" and not (attrs.get("text") or "").strip():
            raise serializers.ValidationError({"text": "A text source needs text."})
        if kind == "qa" and not attrs.get("pairs"):
            raise serializers.ValidationError({"pairs": "A qa source needs pairs."})
        if kind in {"url", "sitemap", "crawl"} and not attrs.get("url"):
            raise serializers.ValidationError({"url": f"A {kind} source needs a url."})
        if kind == "urls" and not attrs.get("urls"):
            raise serializers.ValidationError({"urls": "A urls source needs urls."})
        return attrs


class SearchSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    top_k = serializers.IntegerField(min_value=1, max_value=50, default=5)


SEARCH_RESPONSE = inline_serializer(
    "SearchResults",
    {
        "results": inline_serializer(
            "SearchResult",
            {
                "text": serializers.CharField(),
                "score": serializers.FloatField(help_text="Relevance, 0 to 1."),
                "chunk_id": serializers.CharField(),
                "heading_path": serializers.ListField(child=serializers.CharField()),
                "page": serializers.IntegerField(allow_null=True),
                "snippet": serializers.CharField(help_text="A short excerpt for citations."),
                "vector_score": serializers.FloatField(
                    allow_null=True, help_text="Cosine similarity, when the vector search found it."
                ),
                "keyword_score": serializers.FloatField(
                    allow_null=True, help_text="Full-text rank, when the keyword search found it."
                ),
                "document": inline_serializer(
                    "SearchDocument",
                    {
                        "id": serializers.IntegerField(),
                        "title": serializers.CharField(),
                        "url": serializers.CharField(help_text="Origin URL or file name."),
                        "source_id": serializers.IntegerField(),
                        "knowledge_base_id": serializers.IntegerField(),
                    },
                ),
            },
            many=True,
        )
    },
)


class KnowledgeBaseViewSet(viewsets.ModelViewSet):
    serializer_class = KnowledgeBaseSerializer
    http_method_names = ["get", "post", "patch", "delete"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        from django.db.models import Count

        return KnowledgeBase.objects.annotate(source_count=Count("sources")).order_by("name", "pk")

    def perform_update(self, serializer: KnowledgeBaseSerializer) -> None:
        changes = dict(serializer.validated_data)
        if not changes.get("embedder_api_key"):
            changes.pop("embedder_api_key", None)  # blank keeps the stored key
        try:
            serializer.instance = services.update_knowledge_base(serializer.instance, changes)
        except DjangoValidationError as exc:
            raise as_drf_error(exc) from None

    def perform_destroy(self, instance: KnowledgeBase) -> None:
        services.delete_knowledge_base(instance)

    @extend_schema(request=NewSourceSerializer, responses={201: SourceSerializer})
    @action(detail=True, methods=["post"])
    def sources(self, request: Request, pk: str | None = None) -> Response:
        kb = self.get_object()
        payload = NewSourceSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            if data["kind"] == "text":
                source = services.add_text_source(kb, data.get("title", ""), data["text"])
            elif data["kind"] in Source.WEB_KINDS:
                source = services.add_web_source(
                    kb, data["kind"], data, data.get("title", ""), data["schedule"]
                )
            else:
                pairs = [dict(pair) for pair in data["pairs"]]
                source = services.add_qa_source(kb, pairs, data.get("title", ""))
        except DjangoValidationError as exc:
            raise as_drf_error(exc) from None
        return Response(SourceSerializer(source).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "FileUpload",
                {"file": serializers.ListField(child=serializers.FileField())},
            )
        },
        responses={
            201: inline_serializer(
                "FileUploadResults",
                {
                    "sources": SourceSerializer(many=True),
                    "errors": inline_serializer(
                        "FileError",
                        {"file": serializers.CharField(), "error": serializers.CharField()},
                        many=True,
                    ),
                    "duplicates": SourceSerializer(many=True),
                },
            )
        },
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def files(self, request: Request, pk: str | None = None) -> Response:
        kb = self.get_object()
        uploads = request.FILES.getlist("file")
        if not uploads:
            raise ValidationError({"file": "Send one or more files as multipart parts named file."})
        outcomes = services.add_file_sources(kb, [(f.name, f.read()) for f in uploads])
        body = {
            "sources": [
                SourceSerializer(o.source).data for o in outcomes if o.source and not o.duplicate
            ],
            "errors": [{"file": o.name, "error": o.error} for o in outcomes if o.error],
            "duplicates": [SourceSerializer(o.source).data for o in outcomes if o.duplicate],
        }
        accepted = body["sources"] or body["duplicates"]
        return Response(body, status=status.HTTP_201_CREATED if accepted else 400)

    @extend_schema(request=SearchSerializer, responses=SEARCH_RESPONSE)
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def search(self, request: Request, pk: str | None = None) -> Response:
        kb = self.get_object()
        payload = SearchSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        results = services.search(
            kb, payload.validated_data["query"], payload.validated_data["top_k"]
        )
        return Response({"results": results})


class SourceViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = SourceSerializer
    queryset = Source.objects.all()

    def perform_destroy(self, instance: Source) -> None:
        services.delete_source(instance)

    @extend_schema(responses=DocumentSerializer(many=True))
    @action(detail=True, methods=["get"])
    def documents(self, request: Request, pk: str | None = None) -> Response:
        source = self.get_object()
        page = self.paginate_queryset(source.documents.order_by("id"))
        return self.get_paginated_response(DocumentSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: SourceSerializer})
    @action(detail=True, methods=["post"])
    def reingest(self, request: Request, pk: str | None = None) -> Response:
        """Run the source again; unchanged documents re-embed nothing."""
        source = self.get_object()
        services.reingest(source)
        source.refresh_from_db()
        return Response(SourceSerializer(source).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: SourceSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str | None = None) -> Response:
        """Sync a web source now (conditional requests: unchanged pages cost nothing)."""
        return self.reingest(request, pk)

    @extend_schema(request=None, responses={202: SourceSerializer, 409: None})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        source = self.get_object()
        if not services.cancel(source):
            raise Conflict("The source is not running.")
        source.refresh_from_db()
        return Response(SourceSerializer(source).data, status=status.HTTP_202_ACCEPTED)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"
