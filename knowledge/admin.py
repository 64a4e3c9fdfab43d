"""Tenant console for knowledge: knowledge bases, their sources with live ingestion progress,
documents and their chunks.

Every write goes through ``knowledge.services`` (or ``pipeline.delete_document``), so the
console, the API and the tasks share one path; the one exception is a web source's sync
schedule, the only field the source page edits. Sources are added from a knowledge base's
page (``admin_views``, ``admin_web``), never through a raw model form.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat, truncatechars
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from knowledge import admin_views, admin_web, pipeline, services
from knowledge.admin_views import (
    DOCUMENT_BULK_FIELDS,
    count_of,
    external_link,
    progress_bar,
    status_badge,
)
from knowledge.models import Chunk, Document, KnowledgeBase, Source

log = logging.getLogger(__name__)
ACTIVE = [Source.Status.PENDING, Source.Status.RUNNING]
LISTED_SOURCES = 50
CHUNKS_PER_PAGE = 100
EDITABLE = {"name", "description", "chunk_tokens", "chunk_overlap", "embedder"}
LISTED_URLS = 20
LISTED_IMAGES = 200


class KnowledgeMedia:
    css = {"all": ["parley/knowledge-admin.css"]}
    js = ["parley/knowledge-admin.js"]


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    form = admin_views.KnowledgeBaseForm
    list_display = [
        "name",
        "sources_count",
        "documents_count",
        "chunks_count",
        "embedder_label",
        "updated_at",
    ]
    search_fields = ["name", "description"]
    actions = ["rebuild_index", "check_index"]
    change_form_template = "admin/knowledge/knowledgebase/change_form.html"
    Media = KnowledgeMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_sources=count_of(Source.objects.all(), "knowledge_base"),
                n_active=count_of(Source.objects.filter(status__in=ACTIVE), "knowledge_base"),
                n_documents=count_of(Document.objects.all(), "source__knowledge_base"),
                n_chunks=count_of(
                    Document.objects.all(), "source__knowledge_base", Sum("chunk_count")
                ),
            )
        )

    @admin.display(description="Sources", ordering="n_sources")
    def sources_count(self, kb: KnowledgeBase) -> str:
        return f"{kb.n_sources} ({kb.n_active} ingesting)" if kb.n_active else str(kb.n_sources)

    @admin.display(description="Documents", ordering="n_documents")
    def documents_count(self, kb: KnowledgeBase) -> int:
        return kb.n_documents

    @admin.display(description="Chunks", ordering="n_chunks")
    def chunks_count(self, kb: KnowledgeBase) -> int:
        return kb.n_chunks

    @admin.display(description="Embedder", ordering="embedder")
    def embedder_label(self, kb: KnowledgeBase) -> str:
        return kb.get_embedder_display()

    def get_fieldsets(self, request: HttpRequest, obj: KnowledgeBase | None = None) -> list:
        embedding = ["chunk_tokens", "chunk_overlap", "embedder", "embedder_api_key"]
        if obj is not None and obj.embedder_api_key:
            embedding.append("clear_embedder_api_key")
        return [
            (None, {"fields": ["name", "description"]}),
            ("Chunking and embedding", {"fields": embedding}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: KnowledgeBase | None = None) -> list:
        # Vectors from two embedders cannot share an index; services enforce it as well.
        return ["embedder"] if obj is not None and obj.has_content() else []

    def save_model(self, request: HttpRequest, obj: KnowledgeBase, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            obj.embedder_api_key = data.get("embedder_api_key", "")
            obj.save()
            return
        current = KnowledgeBase.objects.get(pk=obj.pk)
        changes = {name: data[name] for name in form.changed_data if name in EDITABLE}
        if data.get("embedder_api_key"):
            changes["embedder_api_key"] = data["embedder_api_key"]
        elif data.get("clear_embedder_api_key"):
            changes["embedder_api_key"] = ""
        try:
            services.update_knowledge_base(current, changes)
        except ValidationError as exc:  # a source finished ingesting since the form was shown
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
        obj.__dict__.update(current.__dict__)

    def delete_model(self, request: HttpRequest, obj: KnowledgeBase) -> None:
        services.delete_knowledge_base(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for kb in queryset:
            services.delete_knowledge_base(kb)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        kbs = list(objs)
        documents = Document.objects.filter(source__knowledge_base__in=kbs)
        counts = {
            "knowledge bases": len(kbs),
            "sources": Source.objects.filter(knowledge_base__in=kbs).count(),
            "documents": documents.count(),
            "chunks": documents.aggregate(n=Coalesce(Sum("chunk_count"), 0))["n"],
        }
        return admin_views.deletion_summary(request, self, kbs, counts)

    def get_urls(self) -> list[URLPattern]:
        view = admin_views.bind_views(self)
        return [
            path(
                "<int:kb_id>/upload/",
                view(admin_views.upload_view),
                name="knowledge_knowledgebase_upload",
            ),
            path(
                "<int:kb_id>/add-text/",
                view(admin_views.add_text_view),
                name="knowledge_knowledgebase_add_text",
            ),
            path(
                "<int:kb_id>/add-qa/",
                view(admin_views.add_qa_view),
                name="knowledge_knowledgebase_add_qa",
            ),
            path(
                "<int:kb_id>/add-website/",
                view(admin_web.add_website_view),
                name="knowledge_knowledgebase_add_website",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        kb = self.get_object(request, unquote(object_id))
        if kb is not None:
            sources = kb.sources.order_by("-created_at")[:LISTED_SOURCES]
            extra_context = {
                **(extra_context or {}),
                "kb_sources": [
                    (s, status_badge(s.status, s.get_status_display(), s.pk), progress_bar(s))
                    for s in sources
                ],
                "kb_source_count": kb.sources.count(),
                "kb_sources_url": reverse("admin:knowledge_source_changelist")
                + f"?knowledge_base__id__exact={kb.pk}",
            }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Rebuild the index of the selected knowledge bases")
    def rebuild_index(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        for kb in queryset:
            try:
                vectors = services.rebuild_index(kb)
            except Exception as exc:  # reported to the operator; the others go on
                log.exception("rebuilding the index of knowledge base %s failed", kb.pk)
                self.message_user(request, f"{kb}: rebuild failed: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{kb}: index rebuilt, {vectors} vector(s).")
        return admin_views.return_to(request)

    @admin.action(description="Check the index of the selected knowledge bases")
    def check_index(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        for kb in queryset:
            try:
                report = services.check_index(kb)
            except Exception as exc:  # reported to the operator; the others go on
                log.exception("checking the index of knowledge base %s failed", kb.pk)
                self.message_user(request, f"{kb}: check failed: {exc}", messages.ERROR)
                continue
            if report.consistent:
                self.message_user(
                    request,
                    f"{kb}: consistent, {report.rows} chunk(s), {report.vectors} vector(s).",
                )
            else:
                self.message_user(
                    request,
                    f"{kb}: {len(report.rows_without_vectors)} chunk(s) without a vector, "
                    f"{len(report.vectors_without_rows)} vector(s) without a chunk. "
                    "Rebuild the index to repair it.",
                    messages.WARNING,
                )
        return admin_views.return_to(request)


# --- Sources ----------------------------------------------------------------------------
@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "kind",
        "knowledge_base",
        "status_display",
        "progress",
        "schedule",
        "created_at",
    ]
    list_filter = ["kind", "status", "schedule", "knowledge_base"]
    search_fields = ["title"]
    actions = ["reingest", "sync_now", "cancel"]
    WEB_FIELDS = ("web_limits", "schedule", "last_synced_at")
    fields = [
        "title",
        "kind",
        "knowledge_base_link",
        "origin",
        *WEB_FIELDS,
        "status_display",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
    ]
    change_form_template = "admin/knowledge/source/change_form.html"
    Media = KnowledgeMedia

    def get_fields(self, request: HttpRequest, obj: Source | None = None) -> list[str]:
        if obj is not None and obj.is_web:
            return self.fields
        return [name for name in self.fields if name not in self.WEB_FIELDS]

    def get_readonly_fields(self, request: HttpRequest, obj: Source | None = None) -> list[str]:
        # A source's content is fixed (re-ingest or delete it instead); of a web source, the
        # sync schedule alone can change.
        return [name for name in self.fields if name != "schedule"]

    @admin.display(description="Status", ordering="status")
    def status_display(self, source: Source) -> str:
        return status_badge(source.status, source.get_status_display(), source.pk)

    @admin.display(description="Progress")
    def progress(self, source: Source) -> str:
        return progress_bar(source)

    @admin.display(description="Knowledge base")
    def knowledge_base_link(self, source: Source) -> str:
        url = reverse("admin:knowledge_knowledgebase_change", args=[source.knowledge_base_id])
        return format_html('<a href="{}">{}</a>', url, source.knowledge_base)

    @admin.display(description="Origin")
    def origin(self, source: Source) -> str:
        if source.kind == Source.Kind.FILE and hasattr(source, "file"):
            return f"{source.file.name} ({filesizeformat(source.file.size)})"
        if source.kind == Source.Kind.TEXT:
            return f"{len(source.config.get('text', '')):,} characters of pasted text"
        if source.kind == Source.Kind.QA:
            return f"{len(source.config.get('pairs', []))} question/answer pair(s)"
        if source.kind == Source.Kind.URLS:
            return self._url_list(source.config.get("urls", []))
        url = source.config.get("url", "")
        return external_link(url) if url else "—"

    def _url_list(self, urls: list[str]) -> SafeString:
        shown = format_html_join(
            "", "<li>{}</li>", ((external_link(u),) for u in urls[:LISTED_URLS])
        )
        more = len(urls) - LISTED_URLS
        return format_html(
            '{} URL(s)<ul class="parley-url-list">{}</ul>{}',
            len(urls),
            shown,
            f"… and {more} more" if more > 0 else "",
        )

    @admin.display(description="Limits")
    def web_limits(self, source: Source) -> str:
        config = source.config
        lines = []
        if source.kind != Source.Kind.URL:
            lines.append(f"Max pages: {config.get('max_pages') or 'default (500)'}")
        if source.kind == Source.Kind.CRAWL:
            lines.append(f"Max depth: {config.get('max_depth', 'default (3)')}")
            for name in ("include", "exclude"):
                lines.extend(f"{name.capitalize()}: {pattern}" for pattern in config.get(name, []))
        return "\n".join(lines) or "—"  # escaped and line-broken by the admin

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # list_select_related is ignored once a queryset selects anything: name both here.
        queryset = super().get_queryset(request).select_related("knowledge_base", "file")
        return queryset.defer("file__data")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sources are added from their knowledge base's page

    def has_change_permission(self, request: HttpRequest, obj: Source | None = None) -> bool:
        if obj is not None and not obj.is_web:
            return False  # nothing to edit: the page is view-only
        return super().has_change_permission(request, obj)

    def has_reingest_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("knowledge.change_source")

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        # Only the schedule: a sync running meanwhile owns the status and counters.
        services.set_schedule(obj, form.cleaned_data["schedule"])

    @admin.action(description="Re-ingest the selected sources", permissions=["reingest"])
    def reingest(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        count = 0
        for source in queryset:
            services.reingest(source)
            count += 1
        self.message_user(request, f"{count} source(s) queued for re-ingestion.", messages.SUCCESS)
        return admin_views.return_to(request)

    @admin.action(description="Sync the selected web sources now", permissions=["reingest"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        synced, skipped = 0, []
        for source in queryset:
            if not source.is_web:
                skipped.append(str(source))
                continue
            services.sync_source(source)
            synced += 1
        if synced:
            self.message_user(request, f"{synced} web source(s) queued for syncing.")
        if skipped:
            self.message_user(
                request,
                f"Not web sources (use Re-ingest): {', '.join(skipped)}.",
                messages.WARNING,
            )
        return admin_views.return_to(request)

    @admin.action(description="Cancel the selected running sources", permissions=["reingest"])
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        cancelled, idle = 0, []
        for source in queryset:
            if services.cancel(source):
                cancelled += 1
            else:
                idle.append(str(source))
        if cancelled:
            self.message_user(
                request, f"{cancelled} source(s) asked to stop; they stop within moments."
            )
        if idle:
            self.message_user(
                request, f"Not running, nothing to cancel: {', '.join(idle)}.", messages.WARNING
            )
        return admin_views.return_to(request)

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        services.delete_source(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for source in queryset.select_related("knowledge_base"):
            services.delete_source(source)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        sources = list(objs)
        documents = Document.objects.filter(source__in=sources)
        counts = {
            "sources": len(sources),
            "documents": documents.count(),
            "chunks": documents.aggregate(n=Coalesce(Sum("chunk_count"), 0))["n"],
        }
        return admin_views.deletion_summary(request, self, sources, counts)

    def get_urls(self) -> list[URLPattern]:
        # Before the default patterns: "<path:object_id>/" would otherwise swallow it.
        view = admin_views.bind_views(self)
        return [
            path("progress/", view(admin_views.progress_view), name="knowledge_source_progress"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        source = self.get_object(request, unquote(object_id))
        if source is not None:
            documents = source.documents.order_by("id").defer(*DOCUMENT_BULK_FIELDS)
            extra_context = {
                **(extra_context or {}),
                "source": source,
                "can_reingest": self.has_reingest_permission(request),
                "is_active": source.status in admin_views.ACTIVE,
                "documents": documents[: admin_views.MAX_LISTED_DOCUMENTS],
                "documents_count": documents.count(),
                "documents_url": reverse("admin:knowledge_document_changelist")
                + f"?source__id__exact={source.pk}",
                "progress_url": reverse("admin:knowledge_source_progress"),
            }
        return super().change_view(request, object_id, form_url, extra_context)


# --- Documents --------------------------------------------------------------------------
@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    WEB_FIELDS = ("fetched_at", "etag", "last_modified")
    list_display = [
        "__str__",
        "source",
        "status_display",
        "outcome_display",
        "error_snippet",
        "chunk_count",
        "size_display",
        "mime_type",
    ]
    list_filter = ["status", "outcome", ("source", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["source"]
    search_fields = ["title", "url"]
    fields = [
        "title",
        "source_link",
        "status_display",
        "outcome",
        "error",
        "url_link",
        "mime_type",
        "size_display",
        "chunk_count",
        "content_hash",
        *WEB_FIELDS,
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    change_form_template = "admin/knowledge/document/change_form.html"
    Media = KnowledgeMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer(*DOCUMENT_BULK_FIELDS)

    def get_fields(self, request: HttpRequest, obj: Document | None = None) -> list[str]:
        if obj is not None and obj.fetched_at:
            return self.fields
        return [name for name in self.fields if name not in self.WEB_FIELDS]

    @admin.display(description="Status", ordering="status")
    def status_display(self, doc: Document) -> str:
        return status_badge(doc.status, doc.get_status_display())

    @admin.display(description="Last sync", ordering="outcome")
    def outcome_display(self, doc: Document) -> str:
        return status_badge(doc.outcome, doc.get_outcome_display()) if doc.outcome else ""

    @admin.display(description="URL")
    def url_link(self, doc: Document) -> str:
        return external_link(doc.url) if doc.url else "—"

    @admin.display(description="Error")
    def error_snippet(self, doc: Document) -> str:
        if not doc.error:
            return ""
        return format_html('<span title="{}">{}</span>', doc.error, truncatechars(doc.error, 90))

    @admin.display(description="Size", ordering="size")
    def size_display(self, doc: Document) -> str:
        return filesizeformat(doc.size)

    @admin.display(description="Source")
    def source_link(self, doc: Document) -> str:
        url = reverse("admin:knowledge_source_change", args=[doc.source_id])
        return format_html('<a href="{}">{}</a>', url, doc.source)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # documents come from ingesting a source

    def has_change_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        source_id = obj.source_id
        pipeline.delete_document(obj)
        services.refresh_source(source_id)  # the source's counters are derived from documents

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        source_ids = set()
        for doc in queryset.select_related("source__knowledge_base"):
            source_ids.add(doc.source_id)
            pipeline.delete_document(doc)
        for source_id in source_ids:
            services.refresh_source(source_id)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        docs = list(objs)
        counts = {"documents": len(docs), "chunks": sum(doc.chunk_count for doc in docs)}
        return admin_views.deletion_summary(request, self, docs, counts)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        doc = self.get_object(request, unquote(object_id))
        if doc is not None:
            chunks = Chunk.objects.filter(document=doc).order_by("ordinal")
            chunks = chunks.only("id", "ordinal", "heading_path", "token_count", "page", "text")
            page = Paginator(chunks, CHUNKS_PER_PAGE).get_page(request.GET.get("chunks"))
            images = page_images(doc.metadata)
            extra_context = {
                **(extra_context or {}),
                "chunks_page": page,
                "images": images[:LISTED_IMAGES],
                "images_count": len(images),
            }
        return super().change_view(request, object_id, form_url, extra_context)


def page_images(metadata: Any) -> list[dict[str, Any]]:
    """The images a web page's extraction kept (``metadata["images"]``), as plain strings for
    the template to escape; ``is_http`` marks the URLs safe to link to. Malformed entries
    (metadata is JSON anyone's pipeline may have written) are skipped."""
    images = metadata.get("images") if isinstance(metadata, dict) else None
    shown = []
    for image in images if isinstance(images, list) else []:
        if not isinstance(image, dict):
            continue
        url, alt, caption = (str(image.get(key) or "") for key in ("url", "alt", "caption"))
        if url or alt or caption:
            is_http = url.lower().startswith(("http://", "https://"))
            shown.append({"url": url, "alt": alt, "caption": caption, "is_http": is_http})
    return shown
