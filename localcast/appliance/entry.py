"""What the data plane knows about one servable file of the store, and which names qualify.

An entry is built once when the file is indexed (``store``) and read by the
pure decision (``plan``): size for ranges, file id for the ETag, and the
pre-encoded header lines that never change for a content-addressed file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from localcast.appliance.headers import file_header_block
from localcast.media.manifest import FILE_EXTENSIONS, TITLE_ID_RE

FILE_NAME_RE = re.compile(r"^([0-9a-f]{64})\.(" + "|".join(FILE_EXTENSIONS) + r")$")

__all__ = ["FILE_NAME_RE", "TITLE_ID_RE", "FileEntry", "make_entry"]


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file the appliance may serve: ``<store>/<title_id>/<file_id>.<ext>``."""

    path: str  # absolute, symlinks resolved, inside the store
    file_id: str
    ext: str
    size: int
    mtime: float
    etag: str  # quoted file id
    header_block: bytes  # Content-Type, ETag, Last-Modified, Cache-Control, Accept-Ranges
    full_block: bytes  # header_block + Content-Length of the whole file


def make_entry(path: str, name: str, size: int, mtime: float) -> FileEntry | None:
    """The entry for a file called ``name``, or None if that name is not servable."""
    m = FILE_NAME_RE.match(name)
    if m is None:
        return None
    file_id, ext = m.group(1), m.group(2)
    block = file_header_block(file_id, ext, mtime)
    return FileEntry(
        path=path,
        file_id=file_id,
        ext=ext,
        size=size,
        mtime=mtime,
        etag=f'"{file_id}"',
        header_block=block,
        full_block=block + f"Content-Length: {size}\r\n".encode(),
    )
