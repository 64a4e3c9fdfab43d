"""One parser per supported type, each returning (metadata title, elements).

Office and text formats go through unstructured's partitioners, imported on first use only.
The partitioners get in-memory files and never a URL, so nothing here touches the network.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from lxml import etree
from lxml import html as lxml_html

from knowledge.parsing import backend, sniff
from knowledge.parsing.archive import read_member
from knowledge.parsing.convert import convert_elements
from knowledge.parsing.document import Element
from knowledge.parsing.pdf import parse_pdf
from knowledge.parsing.tables import row_elements, rows_from_html

Parser = Callable[[bytes], tuple[str, list[Element]]]

# Hostile XML must not make lxml fetch DTDs or expand entities.
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
# unstructured runs langdetect over the whole text only to label element metadata we never use;
# on a large document that costs seconds. [""] switches it off.
_SKIP_LANGUAGE_DETECTION = {"languages": [""]}


def office_title(data: bytes) -> str:
    """The title in docProps/core.xml, shared by DOCX, PPTX and XLSX."""
    core = read_member(data, "docProps/core.xml")
    if not core:
        return ""
    try:
        root = etree.fromstring(core, _SAFE_XML)
    except etree.XMLSyntaxError:
        return ""
    return " ".join((root.findtext(_DC_TITLE) or "").split())


def parse_docx(data: bytes) -> tuple[str, list[Element]]:
    import docx

    partition_docx = backend.load("unstructured.partition.docx").partition_docx
    raw = partition_docx(
        file=io.BytesIO(data), infer_table_structure=True, **_SKIP_LANGUAGE_DETECTION
    )
    # unstructured reports the Title style like Heading 1; python-docx tells them apart.
    title_texts = {
        " ".join(p.text.split())
        for p in docx.Document(io.BytesIO(data)).paragraphs
        if p.style is not None and p.style.name == "Title"
    }
    elements = [
        Element("title", element.text, page=element.page)
        if element.kind == "heading" and element.text in title_texts
        else element
        for element in convert_elements(raw)
    ]
    return office_title(data), elements


def parse_pptx(data: bytes) -> tuple[str, list[Element]]:
    partition_pptx = backend.load("unstructured.partition.pptx").partition_pptx
    raw = partition_pptx(
        file=io.BytesIO(data),
        include_page_breaks=False,
        include_slide_notes=True,
        infer_table_structure=True,
        **_SKIP_LANGUAGE_DETECTION,
    )
    return office_title(data), convert_elements(raw)


def parse_xlsx(data: bytes) -> tuple[str, list[Element]]:
    partition_xlsx = backend.load("unstructured.partition.xlsx").partition_xlsx
    # One table per sheet: sub-table detection guesses titles inside sheets and often errs.
    raw = partition_xlsx(
        file=io.BytesIO(data),
        find_subtable=False,
        include_header=False,
        infer_table_structure=True,
        **_SKIP_LANGUAGE_DETECTION,
    )
    elements: list[Element] = []
    for table in raw:
        metadata = table.metadata
        page = metadata.page_number
        if metadata.page_name:
            elements.append(Element("heading", metadata.page_name, level=1, page=page))
        if metadata.text_as_html:
            elements.extend(row_elements(rows_from_html(metadata.text_as_html), page=page))
    return office_title(data), elements


def parse_csv(data: bytes) -> tuple[str, list[Element]]:
    partition_csv = backend.load("unstructured.partition.csv").partition_csv
    text = sniff.decode_text(data)
    raw = partition_csv(
        file=io.BytesIO(text.encode("utf-8")),
        encoding="utf-8",
        include_header=False,
        **_SKIP_LANGUAGE_DETECTION,
    )
    return "", convert_elements(raw)


def parse_html(data: bytes) -> tuple[str, list[Element]]:
    partition_html = backend.load("unstructured.partition.html").partition_html
    text = sniff.decode_text(data)
    raw = partition_html(text=text, skip_headers_and_footers=True, **_SKIP_LANGUAGE_DETECTION)
    return _html_title(text), convert_elements(raw)


def parse_markdown(data: bytes) -> tuple[str, list[Element]]:
    partition_md = backend.load("unstructured.partition.md").partition_md
    raw = partition_md(text=sniff.decode_text(data), **_SKIP_LANGUAGE_DETECTION)
    return "", convert_elements(raw)


def parse_text(data: bytes) -> tuple[str, list[Element]]:
    partition_text = backend.load("unstructured.partition.text").partition_text
    raw = partition_text(text=sniff.decode_text(data), **_SKIP_LANGUAGE_DETECTION)
    return "", convert_elements(raw)


def _html_title(text: str) -> str:
    try:
        root = lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return ""
    return " ".join((root.findtext(".//title") or "").split())


PARSERS: dict[str, Parser] = {
    sniff.PDF: parse_pdf,
    sniff.DOCX: parse_docx,
    sniff.PPTX: parse_pptx,
    sniff.XLSX: parse_xlsx,
    sniff.CSV: parse_csv,
    sniff.HTML: parse_html,
    sniff.MARKDOWN: parse_markdown,
    sniff.PLAIN: parse_text,
}

# How each type is named in "The file is not a valid ..." messages.
TYPE_NAMES = {
    sniff.PDF: "PDF",
    sniff.DOCX: "Word document",
    sniff.PPTX: "PowerPoint presentation",
    sniff.XLSX: "Excel workbook",
    sniff.CSV: "CSV file",
    sniff.HTML: "HTML page",
    sniff.MARKDOWN: "Markdown file",
    sniff.PLAIN: "text file",
}
