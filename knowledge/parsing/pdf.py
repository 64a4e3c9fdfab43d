"""PDF text extraction: pdfminer.six for the text boxes, unstructured's rules to classify them.

This is what ``partition_pdf(strategy="fast")`` does, but unstructured 0.27 cannot even import
its PDF module without ``unstructured-inference``, which pulls in torch, torchvision and
layout models; going to pdfminer directly keeps PDF parsing small and offline.
"""

from __future__ import annotations

import io
import re

from knowledge.parsing import backend
from knowledge.parsing.convert import convert_element
from knowledge.parsing.document import Element
from knowledge.parsing.errors import CorruptFile

_HYPHENATED_BREAK_RE = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_BULLET_LINE_RE = re.compile(
    "^\\s*(?:[\u2022\u25e6\u25aa\u2023\u25cf\u25cb\u25a0\u25a1\u2013*-]|\\d{1,3}[.)])\\s+"
)


def parse_pdf(data: bytes) -> tuple[str, list[Element]]:
    """Return the PDF's metadata title (may be empty) and its elements."""
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams, LTTextContainer
    from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    element_from_text = backend.load("unstructured.partition.text").element_from_text
    try:
        document = PDFDocument(PDFParser(io.BytesIO(data)))
    except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
        raise CorruptFile(
            "The PDF is password-protected or encrypted; upload an unprotected copy."
        ) from exc
    title = _metadata_title(document)
    resources = PDFResourceManager(caching=True)
    aggregator = PDFPageAggregator(resources, laparams=LAParams())
    interpreter = PDFPageInterpreter(resources, aggregator)
    elements: list[Element] = []
    for page_number, page in enumerate(PDFPage.create_pages(document), 1):
        interpreter.process_page(page)
        for item in aggregator.get_result():
            if not isinstance(item, LTTextContainer):
                continue
            for block in _blocks(item.get_text()):
                for element in convert_element(element_from_text(block)):
                    elements.append(
                        Element(element.kind, element.text, level=element.level, page=page_number)
                    )
    return title, elements


def _blocks(box_text: str) -> list[str]:
    """Split a text box into paragraphs and bullet items, joining wrapped lines."""
    text = _HYPHENATED_BREAK_RE.sub("", box_text)
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            blocks.append([])
        elif _BULLET_LINE_RE.match(line) or not blocks:
            blocks.append([line.strip()])
        else:
            blocks[-1].append(line.strip())
    return [" ".join(lines) for lines in blocks if lines]


def _metadata_title(document: object) -> str:
    from pdfminer.pdftypes import resolve1
    from pdfminer.utils import decode_text

    for info in getattr(document, "info", []):
        value = resolve1(info.get("Title"))
        if isinstance(value, bytes):
            title = decode_text(value).strip()
            # Word's PDF export stamps "Microsoft Word - report.docx" as the title.
            if title and not title.lower().startswith("microsoft word -"):
                return title
    return ""
