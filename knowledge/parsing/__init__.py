"""Offline document parsing: bytes in, a title and structured text elements out.

``parse_document`` sniffs the real type from the content, refuses unsafe or oversized input
before any parser sees it, and turns every failure into a :class:`ParseError` whose message
can be shown to the person who uploaded the file. Pure Python: no Django, no database, and no
network (see ``offline_nlp`` and ``backend`` for how unstructured is kept offline).
"""

from __future__ import annotations

from pathlib import PurePath

from knowledge.parsing.archive import check_zip_safety, uncompressed_limit
from knowledge.parsing.document import Element, ElementKind, ParsedDocument
from knowledge.parsing.errors import (
    CorruptFile,
    FileTooLarge,
    ParseError,
    UnsafeArchive,
    UnsupportedFile,
)
from knowledge.parsing.sniff import OFFICE_TYPES, sniff_mime

__all__ = [
    "CorruptFile",
    "Element",
    "ElementKind",
    "FileTooLarge",
    "ParseError",
    "ParsedDocument",
    "UnsafeArchive",
    "UnsupportedFile",
    "check_upload",
    "parse_document",
    "sniff_mime",
]


def parse_document(
    data: bytes,
    filename: str,
    *,
    max_bytes: int,
    max_uncompressed_bytes: int | None = None,
) -> ParsedDocument:
    """Parse an uploaded file into a :class:`ParsedDocument`; raise :class:`ParseError`.

    ``max_uncompressed_bytes`` bounds what an Office file may expand to; by default the
    smaller of 200 MB and 100 x ``max_bytes``.
    """
    mime_type = check_upload(
        data, filename, max_bytes=max_bytes, max_uncompressed_bytes=max_uncompressed_bytes
    )

    from knowledge.parsing.formats import PARSERS, TYPE_NAMES

    try:
        metadata_title, elements = PARSERS[mime_type](data)
    except ParseError:
        raise
    except Exception as exc:
        # Third-party parsers raise all kinds of errors on malformed input.
        raise CorruptFile(
            f"The file is not a valid {TYPE_NAMES[mime_type]} (it may be corrupt)."
        ) from exc
    return ParsedDocument(
        title=metadata_title or _first_heading(elements) or _stem(filename),
        mime_type=mime_type,
        elements=elements,
    )


def check_upload(
    data: bytes,
    filename: str,
    *,
    max_bytes: int,
    max_uncompressed_bytes: int | None = None,
) -> str:
    """The cheap checks an upload gets before it is accepted: size, real type (sniffed from
    the content) and, for Office files, archive safety. Returns the MIME type."""
    if len(data) > max_bytes:
        raise FileTooLarge(
            f"The file is {_megabytes(len(data))}; the largest file accepted is "
            f"{_megabytes(max_bytes)}."
        )
    mime_type = sniff_mime(data, filename)
    if mime_type in OFFICE_TYPES:
        check_zip_safety(
            data, max_uncompressed=max_uncompressed_bytes or uncompressed_limit(max_bytes)
        )
    return mime_type


def _first_heading(elements: list[Element]) -> str:
    for element in elements:
        if element.kind in ("title", "heading"):
            return element.text[:300]
    return ""


def _stem(filename: str) -> str:
    # Browsers may send a full Windows path as the name.
    return PurePath(filename.replace("\\", "/")).stem or "Untitled"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
