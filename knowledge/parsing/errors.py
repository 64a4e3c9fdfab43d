"""Errors raised by document parsing; their messages are shown to the people who upload files."""

from __future__ import annotations


class ParseError(Exception):
    """A document could not be turned into text; ``str(exc)`` is fit to show to a user."""


class UnsupportedFile(ParseError):
    """The content is of a type we do not parse (images, executables, legacy Office, ...)."""


class FileTooLarge(ParseError):
    """The file is larger than the limit the caller set."""


class CorruptFile(ParseError):
    """The content claims to be a supported type but cannot be read as one."""


class UnsafeArchive(ParseError):
    """An Office (ZIP) container that would expand to too much data or has unsafe member names."""
