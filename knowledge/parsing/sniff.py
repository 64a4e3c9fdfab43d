"""Content-based file type detection: the bytes decide, the file name only breaks ties.

Uploads arrive with whatever name the user's machine gave them, so a PDF called ``.docx`` or a
web page saved as ``.txt`` must still be parsed as what it is. Binary formats are recognised by
their signatures (Office files by the parts inside their ZIP container); text is told apart
as HTML, Markdown, CSV or plain text by a few cheap heuristics over its beginning.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import PurePath

from knowledge.parsing.errors import CorruptFile, UnsupportedFile

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"
HTML = "text/html"
MARKDOWN = "text/markdown"
PLAIN = "text/plain"
OFFICE_TYPES = frozenset({DOCX, PPTX, XLSX})

# The part that makes a ZIP container an Office document of each kind.
_OFFICE_MAIN_PARTS = {
    "word/document.xml": DOCX,
    "ppt/presentation.xml": PPTX,
    "xl/workbook.xml": XLSX,
}
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BINARY_SIGNATURES = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x7fELF", "a program"),
    (b"\x1f\x8b", "a compressed (gzip) file"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"{\\rtf", "an RTF document"),
)
_SAMPLE_CHARS = 16_384
_STRONG_HTML_RE = re.compile(
    r"\A(?:\s|<\?xml[^>]*>|<!--.*?-->)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_HTML_TAG_RE = re.compile(
    r"</?(?:html|head|body|title|meta|div|span|p|br|h[1-6]|ul|ol|li|table|tr|td|th|a|"
    r"article|section|nav|main|header|footer|strong|em|img|script|style)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_MARKDOWN_RES = (
    re.compile(r"^#{1,6}\s+\S", re.MULTILINE),  # ATX heading
    re.compile(r"^(?:```|~~~)", re.MULTILINE),  # fenced code
    re.compile(r"^\s{0,3}(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE),  # list item
    re.compile(r"\[[^\]\n]+\]\([^)\s]+\)"),  # link
    re.compile(r"(?:\*\*|__)[^*_\n]+(?:\*\*|__)"),  # bold
    re.compile(r"^\s*\|?(?:\s*:?-{3,}:?\s*\|)+", re.MULTILINE),  # table separator
    re.compile(r"^\S.*\n(?:=+|-+)\s*$", re.MULTILINE),  # setext heading
)
_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
_HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
_CSV_SUFFIXES = frozenset({".csv", ".tsv"})


def sniff_mime(data: bytes, filename: str) -> str:
    """Return the MIME type of ``data`` or raise :class:`UnsupportedFile`."""
    head = data[:1024]
    if b"%PDF-" in head:  # the spec tolerates junk before the header
        return PDF
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _sniff_zip(data, filename)
    if data.startswith(_OLE2_MAGIC):
        raise UnsupportedFile(
            "Old-style Office files (.doc, .xls, .ppt) and password-protected Office files are "
            "not supported. Save the file as .docx, .xlsx or .pptx without a password."
        )
    for signature, description in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise UnsupportedFile(f"This file looks like {description}, which is not supported.")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        # NUL bytes outside UTF-16/32 text: images, programs and other binary formats.
        raise UnsupportedFile("This file is binary, not a document type we support.")
    if not data.strip():
        raise UnsupportedFile("The file is empty.")
    text = decode_text(data[: _SAMPLE_CHARS * 4], sample=True)
    return _sniff_text(text[:_SAMPLE_CHARS], PurePath(filename).suffix.lower())


def _sniff_zip(data: bytes, filename: str) -> str:
    try:
        # Only the central directory is read here; nothing is decompressed.
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise CorruptFile(
            "The file is a damaged ZIP container (a broken Office document?) and cannot be read."
        ) from exc
    for part, mime in _OFFICE_MAIN_PARTS.items():
        if part in names:
            return mime
    if "content.xml" in names and "mimetype" in names:
        raise UnsupportedFile(
            "OpenDocument files (.odt, .ods, .odp) are not supported. Save as .docx, .xlsx or "
            ".pptx."
        )
    raise UnsupportedFile("ZIP archives are not supported: upload the documents one by one.")


def decode_text(data: bytes, *, sample: bool = False) -> str:
    """Decode text of unknown encoding, or raise UnsupportedFile if it is not text.

    With ``sample`` the bytes may be cut in the middle of a character, which is tolerated.
    """
    for bom, encoding in (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    if b"\x00" in data[:8192]:
        raise UnsupportedFile("This file is binary, not a document type we support.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if sample and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8")
    # Not UTF-8: most likely a legacy single-byte encoding, which charset-normalizer identifies.
    from charset_normalizer import from_bytes

    best = from_bytes(data[:65_536]).best()
    if best is None or _control_ratio(str(best)) > 0.05:
        raise UnsupportedFile("This file is binary, not a document type we support.")
    return data.decode(best.encoding, errors="replace")


def _control_ratio(text: str) -> float:
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    return controls / max(len(text), 1)


def _sniff_text(text: str, suffix: str) -> str:
    if _STRONG_HTML_RE.match(text):
        return HTML
    html_tags = len(_HTML_TAG_RE.findall(text))
    markdown_signals = sum(1 for pattern in _MARKDOWN_RES if pattern.search(text))
    # Markdown may embed a little HTML; a Markdown name keeps it Markdown unless tags dominate.
    if suffix in _MARKDOWN_SUFFIXES and html_tags < 10:
        return MARKDOWN
    if html_tags >= 3 or (html_tags >= 1 and suffix in _HTML_SUFFIXES):
        return HTML
    if _looks_like_csv(text, strict=suffix not in _CSV_SUFFIXES):
        return CSV
    if markdown_signals >= 2 or (markdown_signals and suffix not in {".txt", ".text"}):
        return MARKDOWN
    return PLAIN


def _looks_like_csv(text: str, *, strict: bool) -> bool:
    """Every sampled line splits into the same number (>1) of fields on one delimiter.

    Without a .csv name, prose with a comma per line must not pass: ask for more lines and
    columns then.
    """
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if text.endswith(("\n", "\r")) is False and len(text) >= _SAMPLE_CHARS and len(lines) > 1:
        lines = lines[:-1]  # the sample may have cut the last line
    min_lines, min_fields = (4, 3) if strict else (2, 2)
    if len(lines) < min_lines:
        return False
    for delimiter in (",", ";", "\t", "|"):
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(widths) == 1 and widths.pop() >= min_fields:
            return True
    return False
