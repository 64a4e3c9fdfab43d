"""The knowledge console's own views: adding sources to a knowledge base (a batch of files,
pasted text, Q&A pairs from a form or a CSV; websites are in ``admin_web``) and the JSON feed
behind the live progress bars.

Each view validates its form and calls one function of ``knowledge.services``; nothing here
writes rows itself. Objects are looked up in the request's tenant schema only (django-tenants
sets it from the host), through ``get_knowledge_base`` which also checks permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString

from knowledge import services
from knowledge.models import Document, KnowledgeBase, Source

if TYPE_CHECKING:
    from django.contrib.auth.models import User

MAX_PROGRESS_IDS = 200
MAX_LISTED_DOCUMENTS = 500
MAX_QA_CSV_BYTES = 10 * 1024 * 1024
MAX_QA_FORM_ROWS = 500
# Never loaded for lists: a page body or a long metadata blob per row adds up fast.
DOCUMENT_BULK_FIELDS = ("metadata", "raw_body")
ACTIVE = frozenset({Source.Status.PENDING, Source.Status.RUNNING})


# --- Shared HTML fragments (escaped with format_html: titles and errors come from users) --
def status_badge(status: str, label: str, source_id: int | None = None) -> SafeString:
    if source_id is None:
        return format_html('<span class="parley-badge parley-badge-{}">{}</span>', status, label)
    return format_html(
        '<span class="parley-badge parley-badge-{}" data-source-id="{}" data-live="status">'
        "{}</span>",
        status,
        source_id,
        label,
    )


def external_link(url: str) -> SafeString:
    """A user-supplied URL as a link opening outside the console: http(s) only (never
    ``javascript:``), escaped, without handing the console to the page (rel=noopener)."""
    if not url.lower().startswith(("http://", "https://")):
        return format_html("{}", url)
    return format_html('<a href="{}" rel="noopener noreferrer" target="_blank">{}</a>', url, url)


def progress_label(source: Source) -> str:
    # knowledge-admin.js builds the same label from the JSON feed; keep the two in step.
    if source.is_web:
        label = (
            f"discovered {source.documents_total} · fetched {source.documents_fetched} · "
            f"indexed {source.documents_indexed} · unchanged {source.documents_unchanged} · "
            f"failed {source.documents_failed}"
        )
        if source.documents_removed:
            label += f" · removed {source.documents_removed}"
        return label
    label = f"{source.progress}% · {source.documents_done}/{source.documents_total} done"
    if source.documents_failed:
        label += f", {source.documents_failed} failed"
    return f"{label} · {source.chunks} chunks"


def progress_bar(source: Source) -> SafeString:
    """A progress bar that knowledge-admin.js keeps current while the source is ingesting."""
    return format_html(
        '<div class="parley-progress" data-source-id="{id}" data-live="progress" '
        'data-status="{status}" data-progress-url="{url}">'
        '<div class="parley-progress-track" role="progressbar" aria-label="Ingestion progress" '
        'aria-valuemin="0" aria-valuemax="100" aria-valuenow="{pct}">'
        '<div class="parley-progress-fill parley-progress-fill-{status}" style="width: {pct}%">'
        "</div></div>"
        '<span class="parley-progress-label">{label}</span>'
        '<span class="parley-progress-error" title="{error}">{error}</span></div>',
        id=source.pk,
        status=source.status,
        url=reverse("admin:knowledge_source_progress"),
        pct=source.progress,
        label=progress_label(source),
        error=source.error,
    )


# --- Progress feed ----------------------------------------------------------------------
class DocumentProgress(TypedDict):
    id: int
    title: str
    status: str
    status_label: str
    error: str
    chunk_count: int
    outcome: str
    outcome_label: str
    url: str


class SourceProgress(TypedDict, total=False):
    id: int
    title: str
    kind: str
    is_web: bool
    status: str
    status_label: str
    cancel_requested: bool
    progress: int
    documents_total: int
    documents_done: int
    documents_failed: int
    chunks: int
    documents_fetched: int
    documents_indexed: int
    documents_unchanged: int
    documents_removed: int
    error: str
    documents: list[DocumentProgress]


def source_progress(source: Source) -> SourceProgress:
    return {
        "id": source.pk,
        "title": str(source),
        "kind": source.kind,
        "is_web": source.is_web,
        "status": source.status,
        "status_label": source.get_status_display(),
        "cancel_requested": source.cancel_requested,
        "progress": source.progress,
        "documents_total": source.documents_total,
        "documents_done": source.documents_done,
        "documents_failed": source.documents_failed,
        "chunks": source.chunks,
        "documents_fetched": source.documents_fetched,
        "documents_indexed": source.documents_indexed,
        "documents_unchanged": source.documents_unchanged,
        "documents_removed": source.documents_removed,
        "error": source.error,
    }


def document_progress(doc: Document) -> DocumentProgress:
    return {
        "id": doc.pk,
        "title": str(doc),
        "status": doc.status,
        "status_label": doc.get_status_display(),
        "error": doc.error,
        "chunk_count": doc.chunk_count,
        "outcome": doc.outcome,
        "outcome_label": doc.get_outcome_display() if doc.outcome else "",
        "url": reverse("admin:knowledge_document_change", args=[doc.pk]),
    }


def _bad_request(message: str) -> JsonResponse:
    error = {"code": "bad_request", "message": message, "details": {}}
    return JsonResponse({"error": error}, status=400)


def progress_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """``?ids=1,2,3`` → ``{"sources": [...]}``; with ``&documents=1`` and a single id, each
    document's status too (the source page's document list). Ids resolve in the request's
    tenant schema only, so another tenant's ids find nothing (or that tenant's own rows)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.strip()]
    except ValueError:
        return _bad_request("ids must be a comma-separated list of numbers.")
    if len(ids) > MAX_PROGRESS_IDS:
        return _bad_request(f"At most {MAX_PROGRESS_IDS} ids at a time.")
    sources = list(Source.objects.filter(pk__in=ids).order_by("pk"))
    payload = [source_progress(source) for source in sources]
    if request.GET.get("documents") and len(sources) == 1:
        documents = sources[0].documents.order_by("id").defer(*DOCUMENT_BULK_FIELDS)
        payload[0]["documents"] = [
            document_progress(doc) for doc in documents[:MAX_LISTED_DOCUMENTS]
        ]
    return JsonResponse({"sources": payload})


# --- Console helpers --------------------------------------------------------------------
def bind_views(model_admin: admin.ModelAdmin) -> Callable[[Callable[..., HttpResponse]], Any]:
    def wrap(func: Callable[..., HttpResponse]) -> Any:
        def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            return func(model_admin, request, **kwargs)

        return model_admin.admin_site.admin_view(view)

    return wrap


def return_to(request: HttpRequest) -> HttpResponseRedirect | None:
    """Where an action run from an object's page goes back to (a same-site path only)."""
    target = request.POST.get("_return_to", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(target)
    return None


def count_of(queryset: QuerySet, outer: str, aggregate: Any = None) -> Coalesce:
    """A correlated subquery per column: separate joins would multiply the counts."""
    value = (
        queryset.filter(**{outer: OuterRef("pk")})
        .order_by()
        .values(outer)
        .annotate(n=aggregate or Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(value, output_field=IntegerField()), 0)


def deletion_summary(
    request: HttpRequest, model_admin: admin.ModelAdmin, objs: Any, counts: dict
) -> tuple:
    """A short delete confirmation: Django's default lists every document and chunk, which
    for a large source is a page of thousands of rows."""
    perms_needed = (
        set() if model_admin.has_delete_permission(request) else {model_admin.opts.verbose_name}
    )
    return [str(obj) for obj in objs], counts, perms_needed, []


# --- Forms ------------------------------------------------------------------------------
class KnowledgeBaseForm(forms.ModelForm):
    # Write-only: the stored key is never rendered back; a blank field keeps it.
    embedder_api_key = forms.CharField(
        label="Embedder API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_embedder_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = KnowledgeBase
        fields = ["name", "description", "chunk_tokens", "chunk_overlap", "embedder"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = bool(self.instance.pk and self.instance.embedder_api_key)
        self.fields["embedder_api_key"].help_text = (
            "A key is stored (never shown). Leave blank to keep it, or type a new one."
            if stored
            else "Only for OpenAI embedders. Stored encrypted and never shown again."
        )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field taking many files (Django docs, "Uploading multiple files")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple) and data:
            return [single(item, initial) for item in data]
        cleaned = single(data, initial)  # raises "required" for no file at all
        return [cleaned] if cleaned else []


class UploadForm(forms.Form):
    files = MultipleFileField(
        help_text="Select one or many files: PDF, Word (.docx), PowerPoint (.pptx), Excel "
        "(.xlsx), HTML, Markdown, plain text or CSV. Each file becomes its own source.",
    )


class TextSourceForm(forms.Form):
    title = forms.CharField(max_length=500, required=False, help_text="Shown in citations.")
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "class": "vLargeTextField"}),
        max_length=services.MAX_TEXT_CHARS,
    )


class QAPairForm(forms.Form):
    question = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 2, "class": "parley-qa-field", "aria-label": "Question"}
        ),
    )
    answer = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "class": "parley-qa-field", "aria-label": "Answer"}
        ),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        question, answer = cleaned.get("question", ""), cleaned.get("answer", "")
        if bool(question) != bool(answer):
            raise ValidationError("Give both a question and an answer (or leave both empty).")
        return cleaned


QAPairFormSet = forms.formset_factory(
    QAPairForm, extra=3, max_num=MAX_QA_FORM_ROWS, validate_max=True
)


class QAImportForm(forms.Form):
    title = forms.CharField(max_length=500, required=False, help_text="Optional.")
    csv_file = forms.FileField(
        required=False,
        label="CSV file",
        help_text="UTF-8 CSV with a header row naming the question and answer columns. Its "
        "pairs are added to any entered below.",
    )

    def clean_csv_file(self) -> list[dict[str, str]]:
        upload = self.cleaned_data.get("csv_file")
        if not upload:
            return []
        if upload.size > MAX_QA_CSV_BYTES:
            raise ValidationError("The CSV file is larger than 10 MB.")
        try:
            return services.parse_qa_csv(upload.read())
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None


# --- Views adding sources ---------------------------------------------------------------
def get_knowledge_base(
    model_admin: admin.ModelAdmin, request: HttpRequest, kb_id: int
) -> KnowledgeBase:
    """The knowledge base of the request's tenant that this user may add sources to."""
    kb = get_object_or_404(KnowledgeBase, pk=kb_id)
    user: User = request.user  # type: ignore[assignment]
    if not (
        model_admin.has_change_permission(request, kb) and user.has_perm("knowledge.add_source")
    ):
        raise PermissionDenied
    return kb


def _render(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    kb: KnowledgeBase,
    template: str,
    title: str,
    **context: Any,
) -> TemplateResponse:
    return TemplateResponse(
        request,
        f"admin/knowledge/knowledgebase/{template}",
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "original": kb,
            "title": title,
            "subtitle": kb.name,
            "media": model_admin.media,
            "has_view_permission": True,
            "kb_url": reverse("admin:knowledge_knowledgebase_change", args=[kb.pk]),
            "tabs": _tabs(kb, template),
            **context,
        },
    )


def _tabs(kb: KnowledgeBase, current: str) -> list[dict[str, Any]]:
    return [
        {
            "label": label,
            "url": reverse(f"admin:knowledge_knowledgebase_{name}", args=[kb.pk]),
            "current": current == f"{name}.html",
        }
        for name, label in (
            ("upload", "Upload files"),
            ("add_text", "Add text"),
            ("add_qa", "Add Q&A pairs"),
            ("add_website", "Add website"),
        )
    ]


def _bound(request: HttpRequest) -> tuple[Any, Any]:
    # Bound on POST even when empty, so that a submit without input shows "required".
    return (request.POST, request.FILES) if request.method == "POST" else (None, None)


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    # Service errors are keyed by the service's argument names, not always our fields.
    if hasattr(exc, "error_dict"):
        for key, errors in exc.error_dict.items():
            form.add_error(key if key in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def upload_view(model_admin: admin.ModelAdmin, request: HttpRequest, kb_id: int) -> HttpResponse:
    kb = get_knowledge_base(model_admin, request, kb_id)
    form = UploadForm(*_bound(request))
    if request.method == "POST" and form.is_valid():
        created = 0
        for upload in form.cleaned_data["files"]:
            # One file at a time, so a large batch never holds every file in memory at once.
            for outcome in services.add_file_sources(kb, [(upload.name, upload.read())]):
                created += _report(request, outcome)
        if created:
            return HttpResponseRedirect(
                reverse("admin:knowledge_knowledgebase_change", args=[kb.pk])
            )
        return HttpResponseRedirect(request.path)
    return _render(model_admin, request, kb, "upload.html", "Upload files", form=form)


def _report(request: HttpRequest, outcome: services.FileOutcome) -> int:
    if outcome.error:
        messages.error(request, f"{outcome.name}: {outcome.error}")
        return 0
    if outcome.duplicate:
        messages.warning(request, f"{outcome.name}: already in this knowledge base")
        return 0
    messages.success(request, f"{outcome.name}: queued")
    return 1


def add_text_view(model_admin: admin.ModelAdmin, request: HttpRequest, kb_id: int) -> HttpResponse:
    kb = get_knowledge_base(model_admin, request, kb_id)
    form = TextSourceForm(*_bound(request))
    if request.method == "POST" and form.is_valid():
        try:
            source = services.add_text_source(
                kb, form.cleaned_data["title"], form.cleaned_data["text"]
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"{source}: queued")
            return HttpResponseRedirect(
                reverse("admin:knowledge_knowledgebase_change", args=[kb.pk])
            )
    return _render(model_admin, request, kb, "add_text.html", "Add text", form=form)


def add_qa_view(model_admin: admin.ModelAdmin, request: HttpRequest, kb_id: int) -> HttpResponse:
    kb = get_knowledge_base(model_admin, request, kb_id)
    data, files = _bound(request)
    form = QAImportForm(data, files)
    formset = QAPairFormSet(data, prefix="pairs")
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        typed = [
            {"question": row["question"], "answer": row["answer"]}
            for row in formset.cleaned_data
            if row.get("question")
        ]
        pairs = typed + form.cleaned_data["csv_file"]
        try:
            source = services.add_qa_source(kb, pairs, form.cleaned_data["title"])
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"{source}: queued ({len(pairs)} pairs)")
            return HttpResponseRedirect(
                reverse("admin:knowledge_knowledgebase_change", args=[kb.pk])
            )
    return _render(
        model_admin, request, kb, "add_qa.html", "Add Q&A pairs", form=form, formset=formset
    )
