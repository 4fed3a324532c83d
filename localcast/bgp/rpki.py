"""RPKI route origin validation (RFC 6811) against validated ROA payloads (VRPs).

VRPs come from the JSON that rpki-client (``-j``) and Routinator
(``--format json``) export: ``{"roas": [{"prefix": "192.0.2.0/24",
"maxLength": 24, "asn": "AS65001" or 65001, ...}, ...]}``; other keys
(``ta``, ``expires``, ``metadata``) are ignored. :func:`load_vrps` reads such
a file with clear errors; :class:`VrpTable` answers valid / invalid /
not-found for (prefix, origin AS).

Pure apart from :func:`load_vrps` reading its one file; no clock, no network
(fetching and validating the RPKI is the validator's job, not ours).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcast.bgp import prefix as pfx
from localcast.bgp.prefix import Afi


class RpkiState(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    NOT_FOUND = "not_found"


class RpkiFileError(ValueError):
    """The VRP file cannot be read or holds an entry that is not a VRP."""


@dataclass(frozen=True)
class Vrp:
    afi: Afi
    prefix: int  # packed
    max_length: int
    asn: int


class VrpTable:
    """VRPs indexed by family and prefix length, for covering lookups."""

    def __init__(self, vrps: Iterable[Vrp]) -> None:
        self._index: dict[Afi, dict[int, dict[int, list[tuple[int, int]]]]] = {
            Afi.IPV4: {},
            Afi.IPV6: {},
        }
        self.size = 0
        for v in vrps:
            length = pfx.length_of(v.prefix)
            key = pfx.network_of(v.prefix) >> (pfx.BITS[v.afi] - length)
            self._index[v.afi].setdefault(length, {}).setdefault(key, []).append(
                (v.max_length, v.asn)
            )
            self.size += 1
        self._lengths = {afi: sorted(idx) for afi, idx in self._index.items()}

    def __len__(self) -> int:
        return self.size

    def validate(self, afi: Afi, prefix: int, origin_as: int | None) -> RpkiState:
        """RFC 6811 §2: valid if a covering VRP matches the origin and length; invalid if
        covered but none matches; not found if no VRP covers the prefix. An origin of
        ``None`` (the path ends in an AS_SET) matches no VRP."""
        length = prefix & 0xFF
        network = prefix >> 8
        bits = pfx.BITS[afi]
        index = self._index[afi]
        covered = False
        for vlen in self._lengths[afi]:
            if vlen > length:
                break
            entries = index[vlen].get(network >> (bits - vlen))
            if entries is None:
                continue
            covered = True
            for max_length, asn in entries:
                if asn == origin_as and asn != 0 and length <= max_length:
                    return RpkiState.VALID
        return RpkiState.INVALID if covered else RpkiState.NOT_FOUND


def _asn(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not an AS number")
    if isinstance(value, int):
        asn = value
    elif isinstance(value, str):
        text = value.strip().upper()
        asn = int(text[2:] if text.startswith("AS") else text)
    else:
        raise ValueError("not an AS number")
    if not 0 <= asn < 2**32:
        raise ValueError(f"AS {asn} out of range")
    return asn


def parse_vrps(data: Any, source: str = "VRP data") -> VrpTable:
    """VRPs from the decoded JSON document."""
    if not isinstance(data, dict) or not isinstance(data.get("roas"), list):
        raise RpkiFileError(f'{source}: expected an object with a "roas" list')
    vrps = []
    for i, entry in enumerate(data["roas"]):
        try:
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            afi, packed = pfx.parse(str(entry["prefix"]))
            length = pfx.length_of(packed)
            max_length = int(entry.get("maxLength", length))
            if not length <= max_length <= pfx.BITS[afi]:
                raise ValueError(f"maxLength {max_length} for a /{length}")
            vrps.append(Vrp(afi, packed, max_length, _asn(entry["asn"])))
        except (KeyError, ValueError, TypeError) as exc:
            raise RpkiFileError(f"{source}: roas[{i}]: {exc!s}") from None
    return VrpTable(vrps)


def load_vrps(path: Path) -> VrpTable:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise RpkiFileError(f"{path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RpkiFileError(f"{path}: not JSON: {exc}") from None
    return parse_vrps(data, str(path))
