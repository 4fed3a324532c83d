"""Appliance inventory: which files of which titles a store holds, and what is complete.

An inventory is a mapping ``title_id -> frozenset of file names``
(``<sha256>.<ext>``). Appliances report it in full when they start and as
deltas (added / removed per title) afterwards; both sides use the functions
here, so the arithmetic is the same at both ends.

A title is *complete* on an appliance when every file a player fetches from
it is there: each rendition's init segment, media playlist and media
segments. (The multivariant playlist and the MPD are rendered per session by
the control plane, so they are not required.)

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from localcast.media.manifest import FILE_EXTENSIONS, TitleManifest

Inventory = Mapping[str, frozenset[str]]

FILE_NAME_RE = re.compile(r"^[0-9a-f]{64}\.(" + "|".join(FILE_EXTENSIONS) + r")$")


def is_content_file(name: str) -> bool:
    """A content-addressed file name (``<sha256>.<ext>``); anything else is not inventory."""
    return FILE_NAME_RE.match(name) is not None


def required_files(manifest: TitleManifest) -> frozenset[str]:
    """The files an appliance must hold to serve ``manifest``'s title."""
    names: set[str] = set()
    for r in manifest.renditions:
        names.add(r.init.name)
        names.add(r.playlist.name)
        names.update(s.file.name for s in r.segments)
    return frozenset(names)


def complete_titles(
    inventory: Inventory, required_by_title: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """The titles of the catalog (``required_by_title``) that ``inventory`` holds complete."""
    return frozenset(
        t
        for t, files in inventory.items()
        if t in required_by_title and required_by_title[t] <= files
    )


def freeze(raw: Mapping[str, Iterable[str]]) -> Inventory:
    """A read-only inventory; titles left with no file are dropped."""
    return MappingProxyType({t: frozenset(f) for t, f in raw.items() if f})


@dataclass(frozen=True)
class Delta:
    added: Inventory
    removed: Inventory

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed

    def titles(self) -> frozenset[str]:
        return frozenset(self.added) | frozenset(self.removed)


def diff(old: Inventory, new: Inventory) -> Delta:
    """What changed from ``old`` to ``new``."""
    titles = set(old) | set(new)
    added = {t: new.get(t, frozenset()) - old.get(t, frozenset()) for t in titles}
    removed = {t: old.get(t, frozenset()) - new.get(t, frozenset()) for t in titles}
    return Delta(freeze(added), freeze(removed))


def apply_delta(inventory: Inventory, delta: Delta) -> Inventory:
    """``inventory`` with ``delta`` applied (removals after additions)."""
    out = {t: set(f) for t, f in inventory.items()}
    for t, files in delta.added.items():
        out.setdefault(t, set()).update(files)
    for t, files in delta.removed.items():
        if t in out:
            out[t] -= files
    return freeze(out)
