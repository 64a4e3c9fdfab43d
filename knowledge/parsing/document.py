"""The parser's output: a flat list of typed elements that keeps the document's structure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ElementKind = Literal["title", "heading", "paragraph", "list_item", "table", "table_row", "code"]


@dataclass(frozen=True, slots=True)
class Element:
    kind: ElementKind
    text: str
    # Heading depth (1 = top level); 0 for every kind that is not a heading.
    level: int = 0
    # 1-based page (PDF), slide (PPTX) or sheet (XLSX) number, where the format has one.
    page: int | None = None


@dataclass(slots=True)
class ParsedDocument:
    title: str
    mime_type: str
    elements: list[Element] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All element texts, one per paragraph: handy for hashing and full-text search."""
        return "\n\n".join(element.text for element in self.elements)
