"""The origin store: where ingested titles live, published atomically.

Layout (shared with the appliance content store, so placing a title is
copying its directory)::

    <origin>/<title_id>/manifest.json
    <origin>/<title_id>/<sha256>.<ext>
    <origin>/.staging/<pid>-<random>-<title_id>/   work in progress, never a title

An ingest works in a staging directory and publishes the finished title
directory with ``os.rename`` (a replace renames the old one aside first, then
removes it), so readers see a whole title or none. Staging directories are
ignored by :meth:`DirectoryOriginStore.titles`; those left by a dead process
are removed by :meth:`DirectoryOriginStore.clean_staging` at the next ingest.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from localcast.media.manifest import TITLE_ID_RE, ManifestError, TitleManifest

MANIFEST_NAME = "manifest.json"
STAGING_DIR = ".staging"
FILE_NAME_RE = re.compile(r"^[0-9a-f]{64}\.(mp4|m4s|m3u8|mpd)$")


class OriginError(RuntimeError):
    """A title is missing, malformed or cannot be published; the message says which."""


class OriginStore(Protocol):
    """What ingest writes to and the control plane / fills read from."""

    def titles(self) -> list[str]:
        """Ids of the published titles, sorted."""
        ...

    def manifest(self, title_id: str) -> TitleManifest | None:
        """The manifest of a published title, or None if there is none."""
        ...

    def file_path(self, title_id: str, name: str) -> Path:
        """Where a title's file (``<sha256>.<ext>`` or manifest.json) lives."""
        ...

    def open(self, title_id: str, name: str) -> BinaryIO:
        """A title's file, opened for reading (FileNotFoundError if absent)."""
        ...

    def staging(self, title_id: str) -> contextlib.AbstractContextManager[Path]:
        """A fresh private directory for building ``title_id``, removed on exit."""
        ...

    def clean_staging(self) -> list[str]:
        """Remove staging directories left by dead processes; return their names."""
        ...

    def publish(self, staging_dir: Path, manifest: TitleManifest) -> None:
        """Make ``staging_dir`` (holding exactly the manifest's files) the title, atomically."""
        ...

    def update_manifest(self, manifest: TitleManifest) -> None:
        """Replace a published title's manifest when its files are unchanged (e.g. a rename)."""
        ...


def check_title_id(title_id: str) -> str:
    if not TITLE_ID_RE.match(title_id):
        raise OriginError(f"invalid title id {title_id!r}: must match {TITLE_ID_RE.pattern}")
    return title_id


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_manifest(path: Path, manifest: TitleManifest) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with tmp.open("w") as f:
        json.dump(manifest.to_json(), f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class DirectoryOriginStore:
    """An :class:`OriginStore` on a local directory (config ``paths.origin``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def staging_root(self) -> Path:
        return self.root / STAGING_DIR

    def title_dir(self, title_id: str) -> Path:
        return self.root / check_title_id(title_id)

    def titles(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if TITLE_ID_RE.match(p.name) and (p / MANIFEST_NAME).is_file()
        )

    def manifest(self, title_id: str) -> TitleManifest | None:
        path = self.title_dir(title_id) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise OriginError(f"{path}: unreadable manifest ({exc})") from exc
        try:
            return TitleManifest.from_json(data)
        except ManifestError as exc:
            raise OriginError(f"{path}: {exc}") from exc

    def file_path(self, title_id: str, name: str) -> Path:
        if name != MANIFEST_NAME and not FILE_NAME_RE.match(name):
            raise OriginError(f"not a title file name: {name!r}")
        return self.title_dir(title_id) / name

    def open(self, title_id: str, name: str) -> BinaryIO:
        return self.file_path(title_id, name).open("rb")

    @contextlib.contextmanager
    def staging(self, title_id: str) -> Iterator[Path]:
        check_title_id(title_id)
        path = self.staging_root / f"{os.getpid()}-{secrets.token_hex(4)}-{title_id}"
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.staging_root.rmdir()  # only if empty: leave no trace

    def clean_staging(self) -> list[str]:
        """Remove staging directories whose process is gone; return their names."""
        if not self.staging_root.is_dir():
            return []
        removed = []
        for entry in self.staging_root.iterdir():
            pid_text = entry.name.split("-", 1)[0]
            if pid_text.isdigit() and _pid_alive(int(pid_text)):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
        return removed

    def publish(self, staging_dir: Path, manifest: TitleManifest) -> None:
        target = self.title_dir(manifest.title_id)
        expected = {f.name: f.size for f in manifest.files()}
        present = {p.name for p in staging_dir.iterdir()} - {MANIFEST_NAME}
        if missing := sorted(set(expected) - present):
            raise OriginError(f"cannot publish {manifest.title_id}: missing {missing[0]}")
        if extra := sorted(present - set(expected)):
            raise OriginError(f"cannot publish {manifest.title_id}: unlisted file {extra[0]}")
        for name, size in expected.items():
            if (staging_dir / name).stat().st_size != size:
                raise OriginError(f"cannot publish {manifest.title_id}: {name} has the wrong size")
        _write_manifest(staging_dir / MANIFEST_NAME, manifest)
        aside = None
        if target.exists():
            aside = self.staging_root / f"{os.getpid()}-{secrets.token_hex(4)}-old-{target.name}"
            os.rename(target, aside)
        try:
            os.rename(staging_dir, target)
        except OSError:
            if aside is not None:
                os.rename(aside, target)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    def update_manifest(self, manifest: TitleManifest) -> None:
        current = self.manifest(manifest.title_id)
        if current is None:
            raise OriginError(f"no title {manifest.title_id} to update")
        if {f.name for f in current.files()} != {f.name for f in manifest.files()}:
            raise OriginError(f"{manifest.title_id}: files differ; publish a new title instead")
        _write_manifest(self.title_dir(manifest.title_id) / MANIFEST_NAME, manifest)
