"""Document parsing: every format offline, structure kept, hostile files refused clearly.

Pure pytest, no database: fixtures are generated here (python-docx, python-pptx and openpyxl
come with unstructured's extras; PDFs are written by hand).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from knowledge.parsing import (
    CorruptFile,
    Element,
    FileTooLarge,
    ParseError,
    UnsafeArchive,
    UnsupportedFile,
    parse_document,
    sniff_mime,
)
from knowledge.parsing.sniff import CSV, DOCX, HTML, MARKDOWN, PDF, PLAIN, PPTX, XLSX

MB = 1024 * 1024
LIMIT = 10 * MB
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any test that tries to open a connection (telemetry pings swallow their errors)."""
    attempts: list[object] = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
    assert attempts == [], f"parsing tried to reach the network: {attempts}"


from tests.knowledge.samples import (  # noqa: E402
    office_zip,
    sample_docx,
    sample_pdf,
    sample_pptx,
    sample_xlsx,
)


def kinds(elements: list[Element]) -> list[tuple[str, str]]:
    return [(element.kind, element.text) for element in elements]


# -- formats ---------------------------------------------------------------------------------


def test_pdf_keeps_headings_list_items_and_page_numbers():
    parsed = parse_document(sample_pdf(), "policies.pdf", max_bytes=LIMIT)
    assert parsed.mime_type == PDF
    assert parsed.title == "Store Policies"
    assert [(e.kind, e.text, e.page) for e in parsed.elements] == [
        ("heading", "Returns Policy", 1),
        ("paragraph", "You can return any item within thirty days of delivery.", 1),
        ("list_item", "Keep the receipt", 1),
        ("paragraph", "Refunds are paid to the original card within five days.", 2),
    ]


def test_docx_keeps_title_heading_levels_lists_and_labelled_table_rows():
    parsed = parse_document(sample_docx(), "handbook.docx", max_bytes=LIMIT)
    assert parsed.mime_type == DOCX
    assert parsed.title == "Employee Handbook"
    assert [(e.kind, e.text, e.level) for e in parsed.elements] == [
        ("title", "Employee Handbook", 0),
        ("heading", "Leave", 1),
        ("paragraph", "Staff get twenty days of paid leave each year.", 0),
        ("heading", "Sick leave", 2),
        ("list_item", "Tell your manager before ten", 0),
        ("table_row", "Type: Annual; Days: 20", 0),
        ("table_row", "Type: Sick; Days: 10", 0),
    ]


def test_docx_title_comes_from_document_properties_first():
    parsed = parse_document(sample_docx(core_title="HR Handbook 2025"), "h.docx", max_bytes=LIMIT)
    assert parsed.title == "HR Handbook 2025"


def test_pptx_slide_titles_are_headings_with_slide_numbers():
    parsed = parse_document(sample_pptx(), "review.pptx", max_bytes=LIMIT)
    assert parsed.mime_type == PPTX
    assert parsed.title == "Quarterly Review"
    assert [(e.kind, e.text, e.level, e.page) for e in parsed.elements] == [
        ("heading", "Quarterly Review", 1, 1),
        ("paragraph", "Revenue grew by ten percent this quarter.", 0, 1),
        ("heading", "Regional Sales", 1, 2),
        ("table_row", "Region: EU; Sales: 5", 0, 2),
    ]


def test_xlsx_gives_a_heading_per_sheet_and_a_labelled_row_per_record():
    parsed = parse_document(sample_xlsx(), "stock.xlsx", max_bytes=LIMIT)
    assert parsed.mime_type == XLSX
    assert [(e.kind, e.text, e.page) for e in parsed.elements] == [
        ("heading", "Prices", 1),
        ("table_row", "Product: Widget; Price: 9.5; Stock: 3", 1),
        ("table_row", "Product: Gadget; Price: 12", 1),
        ("heading", "Staff", 2),
        ("table_row", "Name: Ann; Role: CEO", 2),
    ]
    assert parsed.title == "Prices"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_rows_are_labelled_with_the_header(delimiter):
    data = delimiter.join(["sku", "name", "price"]) + "\n"
    data += "\n".join(
        delimiter.join(row) for row in [("A1", "Widget", "9.50"), ("B2", "Gadget", "12")]
    )
    parsed = parse_document(data.encode(), "catalog.csv", max_bytes=LIMIT)
    assert parsed.mime_type == CSV
    assert parsed.title == "catalog"
    assert kinds(parsed.elements) == [
        ("table_row", "sku: A1; name: Widget; price: 9.50"),
        ("table_row", "sku: B2; name: Gadget; price: 12"),
    ]


def test_markdown_keeps_heading_levels_lists_code_and_tables():
    text = (
        "# Setup Guide\n\nThis guide explains how the tool is installed.\n\n## Install\n\n"
        "- download the package\n- run the installer\n\n```\npip install parley\n```\n\n"
        "| Option | Default |\n|---|---|\n| port | 8000 |\n\n### Troubleshooting\n"
    )
    parsed = parse_document(text.encode(), "guide.md", max_bytes=LIMIT)
    assert parsed.mime_type == MARKDOWN
    assert parsed.title == "Setup Guide"
    assert [(e.kind, e.text, e.level) for e in parsed.elements] == [
        ("heading", "Setup Guide", 1),
        ("paragraph", "This guide explains how the tool is installed.", 0),
        ("heading", "Install", 2),
        ("list_item", "download the package", 0),
        ("list_item", "run the installer", 0),
        ("code", "pip install parley", 0),
        ("table_row", "Option: port; Default: 8000", 0),
        ("heading", "Troubleshooting", 3),
    ]


def test_html_keeps_heading_levels_lists_and_uses_the_title_tag():
    page = (
        "<!DOCTYPE html><html><head><title>Help Centre</title></head><body>"
        "<h1>Shipping</h1><p>We ship every order within two working days.</p>"
        "<h3>Costs</h3><ul><li>Free over 50 euros</li><li>5 euros otherwise</li></ul>"
        "<pre><code>ORDER-1234</code></pre></body></html>"
    )
    parsed = parse_document(page.encode(), "help.html", max_bytes=LIMIT)
    assert parsed.mime_type == HTML
    assert parsed.title == "Help Centre"
    assert [(e.kind, e.text, e.level) for e in parsed.elements] == [
        ("heading", "Shipping", 1),
        ("paragraph", "We ship every order within two working days.", 0),
        ("heading", "Costs", 3),
        ("list_item", "Free over 50 euros", 0),
        ("list_item", "5 euros otherwise", 0),
        ("code", "ORDER-1234", 0),
    ]


def test_plain_text_finds_titles_paragraphs_and_bullets():
    text = (
        "Refund policy\n\nWe refund orders within thirty days of purchase.\n\n- first\n- second\n"
    )
    parsed = parse_document(text.encode("cp1252"), "notes.txt", max_bytes=LIMIT)
    assert parsed.mime_type == PLAIN
    assert kinds(parsed.elements) == [
        ("heading", "Refund policy"),
        ("paragraph", "We refund orders within thirty days of purchase."),
        ("list_item", "first"),
        ("list_item", "second"),
    ]


def test_title_falls_back_to_the_file_name():
    parsed = parse_document(
        b"We answer every email within a day.", "C:\\Users\\me\\faq-2024.txt", max_bytes=99
    )
    assert parsed.title == "faq-2024"


# -- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "filename", "expected"),
    [
        (sample_pdf, "report.docx", PDF),
        (sample_docx, "report.pdf", DOCX),
        (sample_xlsx, "data.csv", XLSX),
        (sample_pptx, "slides", PPTX),
        (lambda: b"<!doctype html><html><body><p>Hi</p></body></html>", "page.txt", HTML),
        (lambda: b"<h1>Title</h1><p>One</p><p>Two</p>", "fragment.txt", HTML),
        (lambda: b"# Notes\n\n- one\n- two\n", "notes", MARKDOWN),
        (lambda: b"# Notes\n\nsome text", "notes.txt", PLAIN),
        (lambda: b"Plain words, no markup at all.", "notes.md", MARKDOWN),
        (lambda: b"id,name,city\n1,Ann,Oslo\n2,Bob,Rome\n3,Cy,Nice\n", "export", CSV),
        (lambda: b"Hello, world.\nGood day, sir.\n", "letter.csv.txt", PLAIN),
    ],
)
def test_sniffing_trusts_content_over_the_extension(builder, filename, expected):
    assert sniff_mime(builder(), filename) == expected


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "photo.pdf", "PNG image"),
        (b"\x7fELF\x02\x01\x01" + bytes(64), "run.txt", "program"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512), "old.doc", "Old-style Office"),
        (random.Random(7).randbytes(4096), "noise.pdf", "binary"),
        (office_zip({"notes.txt": b"hello"}), "bundle.docx", "ZIP archives"),
        (b"", "empty.txt", "empty"),
    ],
)
def test_unsupported_content_is_refused_with_a_reason(data, filename, message):
    with pytest.raises(UnsupportedFile, match=message):
        parse_document(data, filename, max_bytes=LIMIT)


# -- broken and hostile input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (sample_pdf()[:300], "cut.pdf", "not a valid PDF"),
        (b"%PDF-1.7\n" + b"garbage " * 200, "garbage.pdf", "not a valid PDF"),
        (sample_docx()[:2000], "cut.docx", "damaged ZIP"),
        (office_zip({"word/document.xml": b"<w:document><oops"}), "bad.docx", "Word document"),
        (office_zip({"xl/workbook.xml": b"not xml"}), "bad.xlsx", "Excel workbook"),
    ],
)
def test_corrupt_files_fail_fast_with_a_clear_message(data, filename, message):
    started = time.monotonic()
    with pytest.raises(CorruptFile, match=message):
        parse_document(data, filename, max_bytes=LIMIT)
    assert time.monotonic() - started < 10


def test_files_over_the_limit_are_refused_before_parsing():
    with pytest.raises(FileTooLarge, match=r"largest file accepted is 0\.5 MB"):
        parse_document(b"x" * (MB // 2 + 1), "big.txt", max_bytes=MB // 2)


def test_a_zip_bomb_is_refused_from_the_central_directory():
    # 60 MB of zeros squeezed into ~60 KB behind a valid-looking DOCX.
    bomb = office_zip({"word/document.xml": bytes(60 * MB)}, level=9)
    assert len(bomb) < MB
    started = time.monotonic()
    with pytest.raises(UnsafeArchive, match="zip bombs"):
        parse_document(bomb, "invoice.docx", max_bytes=LIMIT)
    assert time.monotonic() - started < 1


def test_an_archive_expanding_past_the_limit_is_refused():
    text = " ".join(str(n) for n in range(400_000)).encode()  # ~2.6 MB, compresses ~3:1
    archive = office_zip({"word/document.xml": text})
    with pytest.raises(UnsafeArchive, match="expand to more than 1 MB"):
        parse_document(archive, "big.docx", max_bytes=LIMIT, max_uncompressed_bytes=MB)


def test_an_archive_with_too_many_parts_is_refused():
    archive = office_zip({"word/document.xml": b"<x/>"} | {f"p/{n}": b"" for n in range(10_001)})
    with pytest.raises(UnsafeArchive, match="10,003 parts"):
        parse_document(archive, "many.docx", max_bytes=LIMIT)


@pytest.mark.parametrize("name", ["../../etc/cron.d/evil", "/abs/path.xml", "word\\..\\..\\x"])
def test_an_archive_with_path_traversal_names_is_refused(name):
    archive = office_zip({"word/document.xml": b"<x/>", name: b"x"})
    with pytest.raises(UnsafeArchive, match="unsafe path"):
        parse_document(archive, "sneaky.docx", max_bytes=LIMIT)


def test_every_error_is_a_parse_error():
    for error in (UnsupportedFile, FileTooLarge, CorruptFile, UnsafeArchive):
        assert issubclass(error, ParseError)


# -- offline ------------------------------------------------------------------------------------

OFFLINE_SCRIPT = """
import json, os, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network disabled")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
import test_parsing as t
from knowledge.parsing import parse_document
samples = {
    "a.pdf": t.sample_pdf(), "a.docx": t.sample_docx(), "a.pptx": t.sample_pptx(),
    "a.xlsx": t.sample_xlsx(), "a.csv": b"a,b\\n1,2\\n", "a.md": b"# T\\n\\ntext",
    "a.html": b"<html><body><h1>T</h1></body></html>", "a.txt": b"Some text here.",
}
counts = {name: len(parse_document(data, name, max_bytes=10**7).elements)
          for name, data in samples.items()}
print(json.dumps({"counts": counts, "spacy": "spacy" in sys.modules,
                  "torch": "torch" in sys.modules, "nltk": "nltk" in sys.modules}))
"""


def test_every_format_parses_offline_without_nlp_models(tmp_path):
    """In a fresh process with no network and an empty HOME: no model is loaded or fetched."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS") and "PROXY" not in key.upper()
    }
    env |= {"HOME": str(tmp_path), "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{Path(__file__).parent}"}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(count > 0 for count in report["counts"].values()), report
    assert not (report["spacy"] or report["torch"] or report["nltk"]), report
    assert list(tmp_path.iterdir()) == [], "parsing wrote into HOME (model or data cache?)"
