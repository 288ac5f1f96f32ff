"""The errors of image reading and writing, and the short user-readable reasons they carry."""

from __future__ import annotations

import os

REASON_EMPTY = "file is empty"
REASON_EXISTS = "file already exists (overwrite not allowed)"
REASON_CORRUPT = "truncated or corrupt image data"
REASON_NOT_IMAGE = "not an image (unrecognised format)"
# Pillow's own decompression-bomb check (about 179 MP) can fire inside its WebP and TIFF parsers.
REASON_DECODER_LIMIT = "image too large: exceeds the decoder's safety limit"


class ImageIOError(Exception):
    """An image could not be read or written; ``path`` names the file, ``reason`` says why."""

    _verb = "process"

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(path, reason)

    def __str__(self) -> str:
        return f"cannot {self._verb} {os.fspath(self.path)}: {self.reason}"

    def __reduce__(self):  # keep (path, reason) when pickled across processes
        return (type(self), (self.path, self.reason))


class ImageReadError(ImageIOError):
    """A file (or byte string) is not an image this program can use; the reason is user-readable."""

    _verb = "read"


class ImageWriteError(ImageIOError):
    """An image could not be written; nothing was left behind at the target."""

    _verb = "write"


class OutputExistsError(ImageWriteError):
    """The target exists and overwriting was not asked for (it may have appeared meanwhile, written
    by another process); it was left as it was."""


def os_reason(exc: OSError) -> str:
    """The short reason of an OS error (its ``strerror``, else its type name)."""
    return exc.strerror or type(exc).__name__
