"""Sample files of every supported format, generated in memory for the tests."""

from __future__ import annotations

import io
import zipfile

import docx
import openpyxl
import pptx

# -- builders ------------------------------------------------------------------------


def make_pdf(pages: list[list[tuple[int, str]]], title: str | None = None) -> bytes:
    """A minimal valid PDF: each page is a list of (font size, line of text)."""
    objects: list[bytes] = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", b""]
    kids = []
    for lines in pages:
        ops, y = [], 760
        for size, text in lines:
            escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /F1 {size} Tf 72 {y} Td ({escaped}) Tj ET")
            y -= size + 14
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 1 0 R >> >> >>" % len(objects)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    trailer = b"/Root %d 0 R" % len(objects)
    if title:
        objects.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
        trailer += b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer,
        xref,
    )
    return bytes(out)


def sample_pdf() -> bytes:
    return make_pdf(
        [
            [
                (20, "Returns Policy"),
                (11, "You can return any item within thirty days of delivery."),
                (11, "- Keep the receipt"),
            ],
            [(11, "Refunds are paid to the original card within five days.")],
        ],
        title="Store Policies",
    )


def sample_docx(*, core_title: str = "") -> bytes:
    document = docx.Document()
    document.core_properties.title = core_title
    document.add_paragraph("Employee Handbook", style="Title")
    document.add_heading("Leave", level=1)
    document.add_paragraph("Staff get twenty days of paid leave each year.")
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Tell your manager before ten", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for r, row in enumerate([("Type", "Days"), ("Annual", "20"), ("Sick", "10")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def sample_pptx() -> bytes:
    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Quarterly Review"
    first.placeholders[1].text_frame.text = "Revenue grew by ten percent this quarter."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Regional Sales"
    table = second.shapes.add_table(2, 2, 0, 3_000_000, 3_000_000, 1_000_000).table
    for (r, c), value in {(0, 0): "Region", (0, 1): "Sales", (1, 0): "EU", (1, 1): "5"}.items():
        table.cell(r, c).text = value
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def sample_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    prices = workbook.active
    prices.title = "Prices"
    for row in [("Product", "Price", "Stock"), ("Widget", 9.5, 3), ("Gadget", 12, None)]:
        prices.append(row)
    staff = workbook.create_sheet("Staff")
    staff.append(("Name", "Role"))
    staff.append(("Ann", "CEO"))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def office_zip(members: dict[str, bytes], level: int = 6) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()
