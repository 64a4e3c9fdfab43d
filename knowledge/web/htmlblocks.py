"""Structural extraction: an HTML subtree → headings, paragraphs, list items, code, table rows.

Used when trafilatura lost part of the main content. It keeps *everything* under the root it
is given, in document order, so the root must already be the page's main content.
"""

from __future__ import annotations

from lxml import html as lxml_html

from knowledge.parsing.document import Element, ElementKind
from knowledge.parsing.tables import row_elements

HEADINGS = {f"h{level}": level for level in range(1, 7)}
BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr",
        "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "ul", *HEADINGS,
    }
)  # fmt: skip
# Whole paragraphs of text: their inline children belong to them.
_TEXT_BLOCKS = frozenset({"p", "dt", "figcaption", "caption", "summary", "address"})
_DROPPED = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object")


def normalise(text: str) -> str:
    """Collapse runs of whitespace."""
    return " ".join(text.split())


def drop_tags(tree: lxml_html.HtmlElement) -> None:
    """Remove what is never content, in place: scripts, styles, comments, permalink pilcrows."""
    for element in tree.xpath(
        "//script | //style | //noscript | //template | //svg | //canvas | //iframe | //object"
        " | //comment() | //a[contains(concat(' ', @class, ' '), ' headerlink ')]"
    ):
        if element.getparent() is not None:
            element.drop_tree()


def structural_elements(
    root: lxml_html.HtmlElement, *, drop_link_lists: bool = False
) -> list[Element]:
    """All text under ``root`` as elements; ``drop_link_lists`` skips blocks that are all links
    (menus left in a page without a marked main element)."""
    out: list[Element] = []
    _block(root, out, "paragraph", drop_link_lists)
    return out


def _tag(element: lxml_html.HtmlElement) -> str:
    return element.tag.lower() if isinstance(element.tag, str) else ""


def _add(out: list[Element], kind: ElementKind, text: str, drop_links: bool, linked: int) -> None:
    text = normalise(text) if kind != "code" else text.strip("\n")
    if not text.strip():
        return
    if drop_links and kind in ("paragraph", "list_item") and linked > 0.8 * len(text):
        return
    out.append(Element(kind, text))


def _linked(element: lxml_html.HtmlElement) -> int:
    """Characters of link text in ``element`` (itself a link or containing some)."""
    links = [element] if _tag(element) == "a" else element.iter("a")
    return sum(len(normalise(link.text_content())) for link in links)


def _block(
    element: lxml_html.HtmlElement, out: list[Element], para: ElementKind, drop: bool
) -> None:
    tag = _tag(element)
    if tag in HEADINGS:
        text = normalise(element.text_content()).rstrip("¶ ")
        if text:
            out.append(Element("heading", text, level=HEADINGS[tag]))
    elif tag == "pre":
        _add(out, "code", element.text_content(), drop, 0)
    elif tag == "table":
        rows = [
            [normalise(cell.text_content()) for cell in row if _tag(cell) in ("td", "th")]
            for row in element.iter("tr")
        ]
        out.extend(row_elements(rows))
    elif tag in _TEXT_BLOCKS and not any(_tag(child) in BLOCK_TAGS for child in element):
        kind: ElementKind = para if tag == "p" else "paragraph"
        _add(out, kind, element.text_content(), drop, _linked(element))
    elif tag == "li":
        _container(element, out, "list_item", drop)
    elif tag not in ("hr", "nav"):
        _container(element, out, para, drop)


def _container(
    element: lxml_html.HtmlElement, out: list[Element], para: ElementKind, drop: bool
) -> None:
    """Loose inline text becomes ``para`` elements; block children are handled on their own."""
    buffer, linked = [element.text or ""], 0
    for child in element:
        if _tag(child) in BLOCK_TAGS:
            _add(out, para, "".join(buffer), drop, linked)
            buffer, linked = [], 0
            _block(child, out, para, drop)
        elif _tag(child) == "br":
            buffer.append(" ")
        elif _tag(child):
            buffer.append(child.text_content())
            linked += _linked(child)
        buffer.append(child.tail or "")
    _add(out, para, "".join(buffer), drop, linked)
