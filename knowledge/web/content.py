"""Content types the fetcher accepts, and what an HTML page says about its own address."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from lxml import etree
from lxml import html as lxml_html

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
DOCUMENT_TYPES = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "text/csv": ".csv",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
}
_BY_EXTENSION = {ext: mime for mime, ext in DOCUMENT_TYPES.items()} | {".htm": "text/html"}
_BY_EXTENSION[".html"] = "text/html"


def classify(mime: str, url: str) -> tuple[str, str]:
    """(content type, kind) where kind is "html", "document" or "" (not for us)."""
    if mime in ("", "application/octet-stream", "binary/octet-stream"):
        path = urlsplit(url).path.lower()
        extension = "." + path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
        mime = _BY_EXTENSION.get(extension, mime)
    if mime in HTML_TYPES:
        return mime, "html"
    if mime in DOCUMENT_TYPES:
        return mime, "document"
    return mime, ""


def canonical_link(body: bytes, base_url: str) -> str | None:
    """The page's ``<link rel=canonical>``, absolute, when it is on the same host."""
    try:
        root = lxml_html.fromstring(body)
    except (ValueError, TypeError, etree.ParserError):
        return None
    for link in root.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            canonical = urljoin(base_url, link.get("href", "").strip()).split("#", 1)[0]
            if urlsplit(canonical).hostname == urlsplit(base_url).hostname:
                return canonical
            return None
    return None
