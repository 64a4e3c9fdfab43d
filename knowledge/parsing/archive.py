"""Safety checks for Office (ZIP) containers, run before any parser opens them.

Parsers (python-docx, python-pptx, openpyxl) decompress members freely, so a zip bomb or a
hostile member name must be caught from the central directory alone. Python's zipfile never
inflates a member past the size the central directory declares (it stops there and then fails
the CRC check), so the declared sizes are a real bound on the work the parsers can be made to do.
"""

from __future__ import annotations

import io
import posixpath
import zipfile

from knowledge.parsing.errors import CorruptFile, UnsafeArchive

MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
# Also bound the expansion relative to the upload limit: min(this x max_bytes, the cap above).
MAX_EXPANSION_FACTOR = 100
MAX_MEMBERS = 10_000
MAX_MEMBER_RATIO = 100
# Small members compress at any ratio (a run of empty rows); only big ones signal a bomb.
RATIO_CHECK_MIN_BYTES = 1024 * 1024


def uncompressed_limit(max_bytes: int) -> int:
    return min(MAX_UNCOMPRESSED_BYTES, MAX_EXPANSION_FACTOR * max_bytes)


def check_zip_safety(
    data: bytes,
    *,
    max_uncompressed: int = MAX_UNCOMPRESSED_BYTES,
    max_members: int = MAX_MEMBERS,
    max_ratio: float = MAX_MEMBER_RATIO,
) -> None:
    """Raise UnsafeArchive (or CorruptFile) unless the container is safe to hand to a parser."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise CorruptFile("The file is a damaged ZIP container and cannot be read.") from exc

    if len(members) > max_members:
        raise UnsafeArchive(
            f"The document contains {len(members):,} parts (the limit is {max_members:,}); "
            "it was rejected as unsafe."
        )
    total = 0
    names: set[str] = set()
    for member in members:
        _check_name(member.filename)
        if member.filename in names:
            raise UnsafeArchive("The document contains duplicate parts; it was rejected as unsafe.")
        names.add(member.filename)
        if member.flag_bits & 0x1:
            raise UnsafeArchive("The document contains encrypted parts and cannot be read.")
        total += member.file_size
        if total > max_uncompressed:
            raise UnsafeArchive(
                f"The document would expand to more than {max_uncompressed // 1024 // 1024} MB "
                "when opened; it was rejected as unsafe."
            )
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size >= RATIO_CHECK_MIN_BYTES and ratio > max_ratio:
            raise UnsafeArchive(
                f"A part of the document is compressed {ratio:,.0f} to 1, which is typical of "
                "zip bombs; it was rejected as unsafe."
            )


def _check_name(name: str) -> None:
    normalized = name.replace("\\", "/")
    parts = normalized.split("/")
    if (
        normalized.startswith("/")
        or ".." in parts
        or (len(normalized) > 1 and normalized[1] == ":")
        or posixpath.normpath(normalized).startswith("..")
        or "\x00" in name
    ):
        raise UnsafeArchive(
            "The document contains a part with an unsafe path name; it was rejected as unsafe."
        )


def read_member(data: bytes, name: str, *, limit: int = 1024 * 1024) -> bytes | None:
    """Return a small member's bytes (None if absent or too big); for metadata parts."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError:
            return None
        if info.file_size > limit:
            return None
        return archive.read(info)
