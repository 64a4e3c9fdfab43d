"""Turns tables into one self-contained text per row, labelled with the header row.

A retrieved chunk often holds a single row; "Product: Widget; Price: 9.5" still makes sense
on its own, where "Widget 9.5" does not.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import html as lxml_html

from knowledge.parsing.document import Element


def rows_from_html(table_html: str) -> list[list[str]]:
    """Cell texts per row of the first table in ``table_html`` (unstructured's text_as_html)."""
    root = lxml_html.fragment_fromstring(table_html, create_parent="div")
    rows: list[list[str]] = []
    for row in root.iter("tr"):
        cells = [" ".join(cell.text_content().split()) for cell in row if cell.tag in ("td", "th")]
        if any(cells):
            rows.append(cells)
    return rows


def row_elements(rows: Sequence[Sequence[str]], *, page: int | None = None) -> list[Element]:
    """First row is the header; each later row becomes "header: value; ..." (empty cells left out).

    A table with only one row has no header to speak of: it becomes one ``table`` element.
    """
    rows = [list(row) for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    if len(rows) == 1:
        return [Element("table", " | ".join(cell for cell in rows[0] if cell), page=page)]
    header = [cell.strip() or f"Column {index}" for index, cell in enumerate(rows[0], 1)]
    elements = []
    for row in rows[1:]:
        pairs = []
        for index, value in enumerate(row):
            value = value.strip()
            if not value:
                continue
            label = header[index] if index < len(header) else f"Column {index + 1}"
            pairs.append(f"{label}: {value}")
        if pairs:
            elements.append(Element("table_row", "; ".join(pairs), page=page))
    return elements
