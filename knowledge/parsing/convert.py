"""Maps unstructured's element classes onto Parley's smaller set of element kinds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from knowledge.parsing.document import Element, ElementKind
from knowledge.parsing.tables import row_elements, rows_from_html

# Page furniture repeats on every page and only adds noise to retrieval.
_SKIPPED_CATEGORIES = frozenset({"Header", "Footer", "PageNumber", "PageBreak", "Image"})


def convert_elements(raw_elements: Iterable[Any]) -> list[Element]:
    elements: list[Element] = []
    for raw in raw_elements:
        elements.extend(convert_element(raw))
    return elements


def convert_element(raw: Any) -> list[Element]:
    """One unstructured element to zero or more of ours (a table yields one per row)."""
    category: str = raw.category
    text = " ".join(str(raw.text).split())
    metadata = raw.metadata
    page: int | None = metadata.page_number
    if category == "Table":
        if metadata.text_as_html:
            return row_elements(rows_from_html(metadata.text_as_html), page=page)
        return [Element("table", text, page=page)] if text else []
    if not text or category in _SKIPPED_CATEGORIES:
        return []
    kind: ElementKind
    if category == "Title":
        return [Element("heading", text, level=(metadata.category_depth or 0) + 1, page=page)]
    if category == "ListItem":
        kind = "list_item"
    elif category == "CodeSnippet":
        # Code keeps its line breaks: they carry meaning.
        return [Element("code", str(raw.text).strip("\n"), page=page)]
    else:
        kind = "paragraph"
    return [Element(kind, text, page=page)]
