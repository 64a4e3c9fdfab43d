"""The knowledge console's "Add website" view: a web page, a list of pages, a sitemap or a
crawl, with its limits and sync schedule.

The form only turns the operator's input into the arguments of
``services.add_web_source``, which validates every URL against the SSRF guard; its refusals
are shown on the field they concern.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from knowledge import services
from knowledge.admin_views import _bound, _render, get_knowledge_base
from knowledge.models import Source

MAX_LISTED_URLS = 50_000
PATTERN_HELP = (
    "One pattern per line. A plain pattern is a glob (* matches anything, / included) on the "
    "page's path and query, "
    "such as /docs/* or *?page=*; a pattern containing :// is a glob on the whole URL; a "
    "pattern starting with re: is a regular expression searched in the whole URL, such as "
    "re:/blog/\\d{4}/."
)


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


class WebSourceForm(forms.Form):
    KINDS = [
        (Source.Kind.URL, "Single page"),
        (Source.Kind.URLS, "List of URLs"),
        (Source.Kind.SITEMAP, "Sitemap"),
        (Source.Kind.CRAWL, "Crawl a website"),
    ]
    # The kinds each optional field applies to (knowledge-admin.js hides the others).
    APPLIES_TO = {
        "url": {Source.Kind.URL, Source.Kind.SITEMAP, Source.Kind.CRAWL},
        "urls": {Source.Kind.URLS},
        "max_pages": {Source.Kind.URLS, Source.Kind.SITEMAP, Source.Kind.CRAWL},
        "max_depth": {Source.Kind.CRAWL},
        "include": {Source.Kind.CRAWL},
        "exclude": {Source.Kind.CRAWL},
    }

    kind = forms.ChoiceField(
        choices=KINDS, initial=Source.Kind.URL, widget=forms.RadioSelect, label="What to add"
    )
    url = forms.CharField(
        label="URL",
        max_length=2048,
        required=False,
        widget=forms.TextInput(attrs={"class": "vURLField", "placeholder": "https://"}),
        help_text="The page, the sitemap (…/sitemap.xml or a sitemap index), or the page a "
        "crawl starts from. Only public http and https addresses are fetched.",
    )
    urls = forms.CharField(
        label="URLs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"}),
        help_text="One URL per line.",
    )
    max_pages = forms.IntegerField(
        label="Max pages",
        required=False,
        min_value=1,
        max_value=50_000,
        help_text="At most this many pages are fetched (500 when left blank).",
    )
    max_depth = forms.IntegerField(
        label="Max depth",
        required=False,
        min_value=0,
        max_value=20,
        help_text="Links followed away from the start page (3 when left blank; 0 fetches the "
        "start page only).",
    )
    include = forms.CharField(
        label="Include",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"Only pages matching one of these are crawled (every page when empty). "
        f"{PATTERN_HELP}",
    )
    exclude = forms.CharField(
        label="Exclude",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"Pages matching any of these are skipped, even when included. {PATTERN_HELP}",
    )
    schedule = forms.ChoiceField(
        choices=Source.Schedule.choices,
        initial=Source.Schedule.OFF,
        help_text="Sync again automatically; unchanged pages cost no re-indexing.",
    )
    title = forms.CharField(
        max_length=500, required=False, help_text="Optional; the URL is used when blank."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, kinds in self.APPLIES_TO.items():
            self.fields[name].widget.attrs["data-web-kinds"] = " ".join(sorted(kinds))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind == Source.Kind.URLS:
            urls = _lines(cleaned.get("urls", ""))
            if not urls:
                self.add_error("urls", "Give at least one URL, one per line.")
            elif len(urls) > MAX_LISTED_URLS:
                self.add_error("urls", f"At most {MAX_LISTED_URLS:,} URLs.")
        elif kind and not cleaned.get("url", "").strip():
            self.add_error("url", "This field is required.")
        return cleaned

    def service_data(self) -> dict[str, Any]:
        """The ``data`` argument of ``services.add_web_source``: only the fields that apply
        to the chosen kind (a value typed before switching kinds is dropped)."""
        cleaned = self.cleaned_data
        kind = cleaned["kind"]
        data: dict[str, Any] = {}
        for name, kinds in self.APPLIES_TO.items():
            value = cleaned.get(name)
            if kind not in kinds or value in (None, ""):
                continue
            data[name] = _lines(value) if name in {"urls", "include", "exclude"} else value
        return data

    def add_service_errors(self, exc: ValidationError) -> None:
        """The service keys every input error by ``url``; put each on the field it is about."""
        errors = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
        for key, error_list in errors.items():
            for error in error_list:
                message = " ".join(error.messages)
                self.add_error(self._field_for(key, message), message)

    def _field_for(self, key: str | None, message: str) -> str | None:
        for name in ("max_pages", "max_depth", "include", "exclude"):
            if message.startswith(f"{name}:") or message.startswith(f"{name} "):
                return name
        if key == "url" and self.cleaned_data.get("kind") == Source.Kind.URLS:
            return "urls"
        return key if key in self.fields else None


def add_website_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, kb_id: int
) -> HttpResponse:
    kb = get_knowledge_base(model_admin, request, kb_id)
    form = WebSourceForm(_bound(request)[0])
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            source = services.add_web_source(
                kb, data["kind"], form.service_data(), data["title"], data["schedule"]
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"{source}: queued")
            return HttpResponseRedirect(reverse("admin:knowledge_source_change", args=[source.pk]))
    return _render(model_admin, request, kb, "add_website.html", "Add website", form=form)
