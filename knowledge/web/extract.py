"""HTML → title, structured elements and images, with trafilatura and a loss check behind it.

trafilatura removes navigation boilerplate well, but its boilerplate rules also delete whole
sections whose ids or classes look like chrome ("menus", "navigation", "sharing", "tags",
"related-objects", "authors", "buttons"...), which API references are full of: on a generated
Sphinx-style reference page it keeps about 60 % of the main text (see the tests). So the
text of the page's main content root (``<main>``, ``[role=main]``, a single ``<article>``, or
else the body without its header, footer, navigation and asides) is measured too, and when
trafilatura keeps less than ``min_recall`` of it, that root is extracted structurally instead
(headings, paragraphs, list items, definition terms, code blocks, table rows).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin

import trafilatura
from lxml import etree
from lxml import html as lxml_html

from knowledge.parsing.document import Element
from knowledge.parsing.tables import row_elements
from knowledge.web.htmlblocks import drop_tags, normalise, structural_elements

EmptyReason = Literal["javascript_only", "login_wall", "no_content"]
# Below this a page has nothing worth indexing, whatever it looks like.
MIN_TEXT_CHARS = 40
# Up to this, a page with a login form or a JavaScript-app shell counts as empty.
THIN_TEXT_CHARS = 400
MAX_IMAGES = 200
_CHROME_XPATH = (
    ".//header | .//footer | .//nav | .//aside | .//*[@role='navigation' or @role='banner'"
    " or @role='contentinfo' or @role='complementary' or @role='search']"
)
_SPA_ROOTS = ("root", "app", "__next", "__nuxt", "svelte", "ember-app")
_JS_NOTICE = re.compile(r"enable javascript|javascript (is )?(required|disabled)", re.I)


@dataclass(frozen=True, slots=True)
class PageImage:
    """An image in the page's content, kept as document metadata."""

    url: str
    alt: str = ""
    caption: str = ""


@dataclass(slots=True)
class ExtractedPage:
    """What ingestion indexes from a web page. ``empty_reason`` set: index nothing."""

    title: str
    elements: list[Element] = field(default_factory=list)
    images: list[PageImage] = field(default_factory=list)
    text_chars: int = 0
    empty_reason: EmptyReason | None = None
    # "trafilatura", or "structural" when the loss check replaced its output.
    method: str = "trafilatura"
    main_chars: int = 0
    trafilatura_chars: int = 0

    @property
    def text(self) -> str:
        return "\n\n".join(element.text for element in self.elements)


def extract_html(html: str | bytes, url: str, *, min_recall: float = 0.8) -> ExtractedPage:
    """Extract ``html`` fetched from ``url``; never raises on odd markup."""
    tree = parse_html(html)
    if tree is None:
        return ExtractedPage(title="", empty_reason="no_content")
    base_url = _base_url(tree, url)
    signals = _empty_signals(tree)
    drop_tags(tree)
    root, semantic = main_root(tree)
    main_chars = len(normalise(root.text_content())) if root is not None else 0

    title, elements = trafilatura_elements(tree, url)
    traf_chars = _chars(elements)
    page = ExtractedPage(
        title=title or _html_title(tree),
        elements=elements,
        main_chars=main_chars,
        trafilatura_chars=traf_chars,
    )
    # Without a semantic root the "main" text still holds sidebars and banners in plain divs,
    # so only a much larger gap means trafilatura lost content rather than boilerplate.
    threshold = min_recall if semantic else min_recall * 0.6
    if root is not None and traf_chars < threshold * main_chars:
        structural = structural_elements(root, drop_link_lists=not semantic)
        if _chars(structural) > traf_chars:
            page.elements, page.method = structural, "structural"
    page.text_chars = _chars(page.elements)
    page.images = page_images(root if root is not None else tree, base_url)
    page.empty_reason = _empty_reason(page.text_chars, signals)
    if page.empty_reason:
        page.elements = []
    return page


def parse_html(html: str | bytes) -> lxml_html.HtmlElement | None:
    """A parsed document, decoding bytes by their ``<meta charset>``, else UTF-8 (or cp1252)."""
    if isinstance(html, bytes):
        html = _decode(html)
    if not html.strip():
        return None
    try:
        return lxml_html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return None


def _decode(data: bytes) -> str:
    head = data[:4096].decode("ascii", errors="replace")
    match = re.search(r"""<meta[^>]+charset=["']?([\w-]+)""", head, re.I)
    for encoding in ([match.group(1)] if match else []) + ["utf-8"]:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", errors="replace")


def main_root(tree: lxml_html.HtmlElement) -> tuple[lxml_html.HtmlElement | None, bool]:
    """The main content element and whether the page marked it as such (vs. a pruned body)."""
    for xpath in ("//main", "//*[@role='main']"):
        found = tree.xpath(xpath)
        if found:
            return found[0], True
    articles = tree.xpath("//article")
    if len(articles) == 1:
        return articles[0], True
    body = tree.find("body")
    if body is None:
        return None, False
    pruned = copy.deepcopy(body)
    for element in pruned.xpath(_CHROME_XPATH):
        if element.getparent() is not None:
            element.drop_tree()
    return pruned, False


def trafilatura_elements(tree: lxml_html.HtmlElement, url: str) -> tuple[str, list[Element]]:
    """Title and elements from trafilatura's XML output (tables as labelled rows)."""
    xml = trafilatura.extract(
        copy.deepcopy(tree),
        url=url,
        output_format="xml",
        with_metadata=True,
        include_tables=True,
        include_images=False,
        include_links=False,
        include_formatting=False,
        include_comments=False,
        favor_recall=True,
    )
    if not xml:
        return "", []
    doc = etree.fromstring(xml.encode("utf-8"), etree.XMLParser(resolve_entities=False))
    main = doc.find("main")
    elements: list[Element] = []
    if main is not None:
        _walk_xml(main, elements, "paragraph")
    return normalise(doc.get("title") or "").rstrip("¶ "), elements


def _walk_xml(node: etree._Element, out: list[Element], para_kind: str) -> None:
    for child in node:
        tag = child.tag
        if tag == "head":
            level = int((child.get("rend") or "h2").lstrip("h") or 2)
            _add(out, "heading", normalise("".join(child.itertext())).rstrip("¶ "), level)
        elif tag == "table":
            rows = [
                [normalise("".join(cell.itertext())) for cell in row.iter("cell")]
                for row in child.iter("row")
            ]
            out.extend(row_elements(rows))
        elif tag == "code":
            _add(out, "code", "".join(child.itertext()).strip("\n"))
        elif tag == "list":
            _walk_xml(child, out, para_kind)
        elif tag == "item":
            rend = child.get("rend") or ""
            kind = "paragraph" if rend.startswith(("dt", "dd")) else "list_item"
            own = [child.text or ""]
            for grandchild in child:
                if grandchild.tag not in ("p", "list", "table", "code", "quote", "head"):
                    own.append("".join(grandchild.itertext()))
                own.append(grandchild.tail or "")
            _add(out, kind, normalise("".join(own)))
            _walk_xml(child, out, kind)
        elif tag in ("p", "quote") and not any(c.tag in ("p", "list") for c in child):
            _add(out, para_kind, normalise("".join(child.itertext())))
        elif tag in ("p", "quote", "div", "main"):
            _walk_xml(child, out, para_kind)


def _add(out: list[Element], kind: str, text: str, level: int = 0) -> None:
    if text.strip():
        out.append(Element(kind, text, level=level if kind == "heading" else 0))  # type: ignore[arg-type]


def _chars(elements: list[Element]) -> int:
    return sum(len(element.text) for element in elements)


def _html_title(tree: lxml_html.HtmlElement) -> str:
    for xpath in ("//title", "//h1"):
        found = tree.xpath(xpath)
        if found and normalise(found[0].text_content()):
            return normalise(found[0].text_content())[:300]
    return ""


def _base_url(tree: lxml_html.HtmlElement, url: str) -> str:
    base = tree.xpath("//base/@href")
    return urljoin(url, str(base[0]).strip()) if base else url


def page_images(root: lxml_html.HtmlElement, base_url: str) -> list[PageImage]:
    """Content images: absolute URL, alt text and the enclosing figure's caption."""
    images: dict[str, PageImage] = {}
    for img in root.iter("img"):
        src = img.get("src") or img.get("data-src") or (img.get("srcset") or "").split(" ")[0]
        src = (src or "").strip()
        if not src or src.startswith("data:"):
            continue
        caption = ""
        figure = next((a for a in img.iterancestors("figure")), None)
        if figure is not None:
            captions = figure.xpath(".//figcaption")
            caption = normalise(captions[0].text_content()) if captions else ""
        absolute = urljoin(base_url, src)
        if absolute not in images and absolute.startswith(("http://", "https://")):
            images[absolute] = PageImage(absolute, normalise(img.get("alt") or ""), caption)
        if len(images) >= MAX_IMAGES:
            break
    return list(images.values())


@dataclass(frozen=True, slots=True)
class _Signals:
    password_input: bool
    javascript_app: bool
    has_scripts: bool


def _empty_signals(tree: lxml_html.HtmlElement) -> _Signals:
    password = bool(tree.xpath("//input[translate(@type,'PASWORD','pasword')='password']"))
    scripts = tree.xpath("//script")
    noscript = " ".join(n.text_content() for n in tree.xpath("//noscript"))
    empty_roots = [
        element
        for name in _SPA_ROOTS
        for element in tree.xpath(f"//*[@id='{name}']")
        if not normalise(element.text_content())
    ]
    javascript_app = bool(scripts) and (bool(_JS_NOTICE.search(noscript)) or bool(empty_roots))
    return _Signals(password, javascript_app, bool(scripts))


def _empty_reason(text_chars: int, signals: _Signals) -> EmptyReason | None:
    if text_chars >= THIN_TEXT_CHARS:
        return None
    if signals.password_input:
        return "login_wall"
    if signals.javascript_app:
        return "javascript_only"
    if text_chars < MIN_TEXT_CHARS:
        return "javascript_only" if signals.has_scripts else "no_content"
    return None


__all__ = [
    "ExtractedPage",
    "PageImage",
    "extract_html",
    "main_root",
    "page_images",
    "parse_html",
    "trafilatura_elements",
]
