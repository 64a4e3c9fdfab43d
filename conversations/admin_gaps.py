"""The console's Knowledge gaps page (`/admin/gaps/`): the questions the bots could not
answer or answered badly, grouped by meaning (``conversations.gaps``), each with a one-click
"Answer this" form that adds a Q&A pair to a knowledge base, searchable at once.

The page needs ``conversations.view_gaps`` (for viewing and answering alike). Everything is
read in the request's tenant schema; the knowledge base of an answer is looked up there
too, so another tenant's id is simply not a choice. Visitor text is untrusted: the template
only ever prints it autoescaped. No inline script: the answer form opens in a <details>.
Importing this module registers the page on the console.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from chatbot.console import ConsoleView
from chatbot.models import Bot
from conversations import gaps
from conversations.services import MAX_MESSAGE_CHARS
from knowledge.models import KnowledgeBase

log = logging.getLogger(__name__)

PERMISSION = "conversations.view_gaps"
PRESETS = [7, 30, 90]
MAX_GROUPS_SHOWN = 100  # the page lists the most frequent groups; the rest are counted
VARIANTS_SHOWN = 5  # per group before "more phrasings"
CONVERSATIONS_SHOWN = 5  # links per group
MAX_ANSWER_CHARS = 20_000


class TextListField(forms.Field):
    """Several values of one name (hidden inputs), as a list of short strings."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        values = [str(item) for item in (value or [])]
        if len(values) > gaps.MAX_QUESTIONS:
            raise ValidationError(f"At most {gaps.MAX_QUESTIONS} questions.")
        if any(len(item) > MAX_MESSAGE_CHARS for item in values):
            raise ValidationError("A question is too long.")
        return values


class AnswerGapForm(forms.Form):
    group = forms.CharField(required=False, max_length=MAX_MESSAGE_CHARS, widget=forms.HiddenInput)
    covers = TextListField(required=False)
    question = forms.CharField(max_length=MAX_MESSAGE_CHARS)
    answer = forms.CharField(max_length=MAX_ANSWER_CHARS, widget=forms.Textarea)
    knowledge_base = forms.ModelChoiceField(
        queryset=KnowledgeBase.objects.order_by("name"),
        error_messages={"invalid_choice": "Choose one of your knowledge bases."},
    )


@dataclass
class Filters:
    days: int
    bot: Bot | None
    error: str = ""


@dataclass
class Row:
    """A group as the template shows it, with its answer form's values."""

    gap: gaps.Gap
    knowledge_base_id: int | None
    linked_kb_ids: set[int]
    question: str
    answer: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)
    open: bool = False

    @property
    def general_errors(self) -> list[str]:
        """Errors not about a visible field (the template cannot read `__all__`)."""
        return [e for name in ("__all__", "covers", "group") for e in self.errors.get(name, [])]

    @property
    def variants(self) -> list[gaps.Variant]:
        return self.gap.variants[:VARIANTS_SHOWN]

    @property
    def more_variants(self) -> list[gaps.Variant]:
        return self.gap.variants[VARIANTS_SHOWN:]

    @property
    def conversations(self) -> list[uuid.UUID]:
        return self.gap.conversation_ids[:CONVERSATIONS_SHOWN]

    @property
    def more_conversations(self) -> int:
        return max(0, len(self.gap.conversation_ids) - CONVERSATIONS_SHOWN)


def filters_from(request: HttpRequest) -> Filters:
    days = request.GET.get("days", str(gaps.DEFAULT_DAYS))
    error = ""
    if not days.isdigit() or int(days) not in PRESETS:
        days, error = str(gaps.DEFAULT_DAYS), "Unknown period: showing the last 30 days."
    bot = None
    if request.GET.get("bot"):
        bot = Bot.objects.filter(public_id=request.GET["bot"]).first()
        if bot is None:
            raise Http404("No such bot.")
    return Filters(days=int(days), bot=bot, error=error)


def answer(request: HttpRequest) -> tuple[AnswerGapForm, HttpResponse | None]:
    """Handle an "Answer this" post: a redirect on success, else the form with errors."""
    form = AnswerGapForm(request.POST)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    kb = data["knowledge_base"]
    try:
        gaps.answer_gap(kb, data["question"], data["answer"], data["covers"])
    except ValidationError as exc:
        form.add_error(None, exc)
        return form, None
    except Exception:  # indexing failed (Chroma, the embedder): nothing was saved
        log.exception("answering a knowledge gap failed")
        form.add_error(None, "The answer could not be indexed just now; nothing was saved.")
        return form, None
    messages.success(
        request,
        f"Added “{data['question']}” to {kb.name}: bots using it can answer it now.",
    )
    return form, HttpResponseRedirect(request.get_full_path())


def build_rows(
    report: gaps.GapReport, kbs: list[KnowledgeBase], form: AnswerGapForm | None
) -> tuple[list[Row], bool]:
    """The rows to show, and whether the failed form (if any) found its group."""
    kbs_of_bot: dict[int, list[int]] = {}
    if kbs:
        links = Bot.knowledge_bases.through.objects.values_list("bot_id", "knowledgebase_id")
        for bot_id, kb_id in links:
            kbs_of_bot.setdefault(bot_id, []).append(kb_id)
    order = [kb.pk for kb in kbs]
    rows, placed = [], False
    for gap in report.gaps[:MAX_GROUPS_SHOWN]:
        linked = {kb_id for bot in gap.bots for kb_id in kbs_of_bot.get(bot.id, [])}
        default = next((pk for pk in order if pk in linked), order[0] if order else None)
        row = Row(gap=gap, knowledge_base_id=default, linked_kb_ids=linked, question=gap.question)
        if form is not None and form.data.get("group") == gap.key:
            row.question = form.data.get("question", "")
            row.answer = form.data.get("answer", "")
            row.knowledge_base_id = _int_or_none(form.data.get("knowledge_base")) or default
            row.errors, row.open, placed = form.errors, True, True
        rows.append(row)
    return rows, placed


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def gaps_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    filters = filters_from(request)
    form = None
    if request.method == "POST":
        form, done = answer(request)
        if done is not None:
            return done
    report = gaps.find_gaps(days=filters.days, bot_id=filters.bot.pk if filters.bot else None)
    kbs = list(KnowledgeBase.objects.order_by("name").only("id", "name"))
    rows, placed = build_rows(report, kbs, form)
    context = {
        **admin.site.each_context(request),
        "title": "Knowledge gaps",
        "report": report,
        "rows": rows,
        "hidden_groups": max(0, len(report.gaps) - MAX_GROUPS_SHOWN),
        "max_questions": f"{gaps.MAX_QUESTIONS:,}",
        "knowledge_bases": kbs,
        "bots": list(Bot.objects.order_by("name").values_list("public_id", "name")),
        "presets": PRESETS,
        "filters": filters,
        # A failed answer whose group is gone (answered meanwhile, other filters).
        "orphan_errors": form.errors if form is not None and not placed else None,
    }
    return TemplateResponse(
        request, "admin/gaps/index.html", context, status=400 if form is not None else 200
    )


admin.site.register_view(  # type: ignore[attr-defined]
    ConsoleView(key="gaps", name="Knowledge gaps", url_name="gaps", permission=PERMISSION),
    path("gaps/", admin.site.admin_view(gaps_view), name="gaps"),
)
