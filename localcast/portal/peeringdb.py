"""Where the operator peers, from a PeeringDB JSON export: exchanges, ports, facilities.

What lives here: a loader that reads what the PeeringDB API (and the
``peeringdb`` package, and the public dumps) produce, keeps the operator's
network, its IX ports (``netixlan``) joined to their exchange (``ix``, through
``ixlan`` when needed) and its facilities (``netfac`` joined to ``fac``), and
answers a :class:`PeeringLocations` for the portal's peering page. What does
not: fetching from PeeringDB (the operator refreshes the file, e.g. with
``curl https://www.peeringdb.com/api/net?asn=<ASN>&depth=2``).

Accepted shapes, all JSON:

* a **combined dump** keyed by object type, each value an API answer or a
  plain list: ``{"net": {"data": [...]}, "ix": {"data": [...]}, "ixlan": ...,
  "netixlan": ..., "fac": ..., "netfac": ...}`` (what public dumps and
  ``peeringdb`` tooling write; other object types are ignored);
* **one API answer** ``{"data": [...], "meta": {}}`` of ``net`` objects fetched
  with ``depth=2``: each carries its ``netixlan_set`` and ``netfac_set``
  (exchange names come from the ports; cities of exchanges are then unknown);
* a **directory** of API answers named by object type (``net.json``,
  ``ix.json``, ``ixlan.json``, ``netixlan.json``, ``fac.json``, ``netfac.json``).

Field names are PeeringDB's: ``netixlan`` (``net_id``, ``ix_id``,
``ixlan_id``, ``name``, ``asn``, ``speed`` in Mbit/s, ``ipaddr4``,
``ipaddr6``, ``is_rs_peer``, ``operational``, ``status``), ``ix`` (``id``,
``name``, ``name_long``, ``city``, ``country``, ``region_continent``,
``website``), ``ixlan`` (``id``, ``ix_id``, ``name``), ``netfac`` (``net_id``,
``fac_id``, ``local_asn``, ``name``, ``city``, ``country``), ``fac`` (``id``,
``name``, ``city``, ``country``, ``address1``, ``latitude``, ``longitude``,
``clli``), ``net`` (``id``, ``asn``, ``name``, ``irr_as_set``,
``policy_general``, ``policy_url``, ``website``). Objects whose ``status`` is
``deleted`` are skipped; unknown fields are ignored.

The operator's network is the ``net`` with ``operator_asn`` (a setting), or
the only ``net`` of the export when no ASN is set. Anything wrong with the
file raises :class:`PeeringdbError` naming the file and the problem, never
anything else. :func:`load_cached` re-reads the file only when it changed.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OBJECT_TYPES = ("net", "ix", "ixlan", "netixlan", "fac", "netfac")
MAX_FILE_BYTES = 512 * 1024 * 1024  # a full public dump is a few hundred MB at most

Record = Mapping[str, Any]
Tables = dict[str, list[Record]]


class PeeringdbError(Exception):
    """The export cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class IxPort:
    """One connection of the operator to an exchange's peering LAN."""

    lan_name: str
    speed_mbps: int
    ipaddr4: str | None
    ipaddr6: str | None
    is_rs_peer: bool
    operational: bool


@dataclass(frozen=True)
class Exchange:
    """An internet exchange where the operator peers, with its ports there."""

    ix_id: int
    name: str
    name_long: str
    city: str
    country: str
    region: str
    website: str
    ports: tuple[IxPort, ...]

    @property
    def speed_mbps(self) -> int:
        return sum(p.speed_mbps for p in self.ports)

    @property
    def rs_peer(self) -> bool:
        return any(p.is_rs_peer for p in self.ports)


@dataclass(frozen=True)
class Facility:
    """A facility (data centre) where the operator has presence."""

    fac_id: int
    name: str
    city: str
    country: str
    address: str
    clli: str
    latitude: float | None
    longitude: float | None
    local_asn: int | None


@dataclass(frozen=True)
class PeeringLocations:
    """The operator's network as PeeringDB describes it."""

    source: str
    asn: int
    name: str
    irr_as_set: str
    policy_general: str
    policy_url: str
    website: str
    exchanges: tuple[Exchange, ...]  # by country, city, name
    facilities: tuple[Facility, ...]  # by country, city, name

    @property
    def port_count(self) -> int:
        return sum(len(x.ports) for x in self.exchanges)

    @property
    def speed_mbps(self) -> int:
        return sum(x.speed_mbps for x in self.exchanges)

    @property
    def countries(self) -> tuple[str, ...]:
        found = {x.country for x in self.exchanges} | {f.country for f in self.facilities}
        return tuple(sorted(c for c in found if c))


def speed_text(mbps: int) -> str:
    """Mbit/s as people say it: ``100000`` -> ``"100G"``, ``2500`` -> ``"2.5G"``, ``500`` ->
    ``"500M"``."""
    if mbps >= 1_000_000:
        return f"{mbps / 1_000_000:g}T"
    if mbps >= 1000:
        return f"{mbps / 1000:g}G"
    return f"{mbps}M"


# --- reading the file ----------------------------------------------------------------------------


def _read_json(path: Path, source: str) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PeeringdbError(f"{source}: {size} bytes, larger than a PeeringDB export")
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise PeeringdbError(f"{source}: no such file") from exc
    except IsADirectoryError as exc:  # pragma: no cover - directories are handled by the caller
        raise PeeringdbError(f"{source}: is a directory") from exc
    except OSError as exc:
        raise PeeringdbError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise PeeringdbError(f"{source}: the file is empty")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise PeeringdbError(f"{source}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise PeeringdbError(
            f"{source}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc


def _records(value: Any, where: str) -> list[Record]:
    """The objects of one type: an API answer ``{"data": [...]}`` or a plain list."""
    if isinstance(value, Mapping):
        if "data" not in value:
            raise PeeringdbError(f'{where}: expected an API answer with a "data" list')
        value = value["data"]
    if not isinstance(value, list):
        raise PeeringdbError(f"{where}: expected a list of objects, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise PeeringdbError(f"{where}[{i}]: expected an object, got {_kind(item)}")
    return [r for r in value if r.get("status", "ok") != "deleted"]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _from_net_answer(nets: list[Record], source: str) -> Tables:
    """Tables from ``net`` objects with their nested ``netixlan_set`` / ``netfac_set``."""
    tables: Tables = {"net": nets, "netixlan": [], "netfac": []}
    for i, net in enumerate(nets):
        for nested, kind in (("netixlan_set", "netixlan"), ("netfac_set", "netfac")):
            items = net.get(nested)
            if items is None:
                continue
            where = f"{source}: data[{i}].{nested}"
            if isinstance(items, list) and any(not isinstance(x, Mapping) for x in items):
                raise PeeringdbError(
                    f"{where} holds ids, not objects: fetch the network with depth=2"
                )
            for r in _records(items, where):
                tables[kind].append({"net_id": net.get("id"), **r})
    return tables


def _tables(doc: Any, source: str) -> Tables:
    if not isinstance(doc, Mapping):
        raise PeeringdbError(
            f"{source}: expected a JSON object (a PeeringDB API answer or a dump keyed by "
            f"object type), got {_kind(doc)}"
        )
    if "data" in doc:  # one API answer: net objects at depth 2
        nets = _records(doc, f"{source}: data")
        if nets and not any("asn" in n and "name" in n for n in nets):
            raise PeeringdbError(
                f"{source}: one API answer must hold net objects (with asn and name) fetched "
                f"with depth=2; for other object types use a dump keyed by object type"
            )
        return _from_net_answer(nets, source)
    known = [k for k in OBJECT_TYPES if k in doc]
    if not known:
        raise PeeringdbError(
            f"{source}: no PeeringDB object types found (expected keys among "
            f'{", ".join(OBJECT_TYPES)}, or an API answer with "data")'
        )
    tables = {k: _records(doc[k], f"{source}: {k}") for k in known}
    # a dump of nets with nested sets (depth 2) and no separate tables
    if "net" in tables and "netixlan" not in tables and "netfac" not in tables:
        nested = _from_net_answer(tables["net"], f"{source}: net")
        tables["netixlan"], tables["netfac"] = nested["netixlan"], nested["netfac"]
    return tables


def _directory_tables(path: Path, source: str) -> Tables:
    tables: Tables = {}
    for kind in OBJECT_TYPES:
        f = path / f"{kind}.json"
        if f.is_file():
            tables[kind] = _records(_read_json(f, str(f)), str(f))
    if not tables:
        raise PeeringdbError(
            f"{source}: a directory without any of {', '.join(k + '.json' for k in OBJECT_TYPES)}"
        )
    if "net" in tables and "netixlan" not in tables and "netfac" not in tables:
        nested = _from_net_answer(tables["net"], f"{source}/net.json")
        tables["netixlan"], tables["netfac"] = nested["netixlan"], nested["netfac"]
    return tables


# --- typed fields --------------------------------------------------------------------------------


def _where(kind: str, r: Record) -> str:
    rid = r.get("id")
    return f"{kind} {rid}" if rid is not None else kind


def _int(r: Record, key: str, where: str, required: bool = False) -> int | None:
    value = r.get(key)
    if value is None:
        if required:
            raise PeeringdbError(f"{where}: {key} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise PeeringdbError(f"{where}: {key} must be a whole number, got {value!r}")
    return value


def _text(r: Record, key: str, where: str) -> str:
    value = r.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PeeringdbError(f"{where}: {key} must be text, got {value!r}")
    return value.strip()


def _bool(r: Record, key: str, where: str, default: bool) -> bool:
    value = r.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise PeeringdbError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _float(r: Record, key: str, where: str) -> float | None:
    value = r.get(key)
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise PeeringdbError(f"{where}: {key} must be a number, got {value!r}") from exc
    return out


def _address(r: Record, key: str, version: int, where: str) -> str | None:
    value = r.get(key)
    if value is None or value == "":
        return None
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError as exc:
        raise PeeringdbError(f"{where}: {key} {value!r} is not an IP address") from exc
    if addr.version != version:
        raise PeeringdbError(f"{where}: {key} {value!r} is not an IPv{version} address")
    return str(addr)


def _by_id(records: Iterable[Record], kind: str, source: str) -> dict[int, Record]:
    out: dict[int, Record] = {}
    for r in records:
        rid = _int(r, "id", f"{source}: {kind}", required=True)
        assert rid is not None
        out[rid] = r
    return out


# --- the operator's view -------------------------------------------------------------------------


def _operator_net(nets: list[Record], asn: int | None, source: str) -> Record | None:
    if asn is not None:
        for n in nets:
            if _int(n, "asn", f"{source}: {_where('net', n)}") == asn:
                return n
        if nets:
            raise PeeringdbError(f"{source}: no network with ASN {asn} (operator_asn)")
        return None
    if len(nets) == 1:
        return nets[0]
    if not nets:
        raise PeeringdbError(
            f"{source}: no net object and no operator_asn setting: cannot tell which "
            f"network is the operator's"
        )
    raise PeeringdbError(
        f"{source}: {len(nets)} networks in the export: set operator_asn to the operator's ASN"
    )


def parse(doc: Any, operator_asn: int | None = None, source: str = "export") -> PeeringLocations:
    """The operator's peering locations from a parsed export (see the module docstring)."""
    return _locations(_tables(doc, source), operator_asn, source)


def _locations(tables: Tables, operator_asn: int | None, source: str) -> PeeringLocations:
    net = _operator_net(tables.get("net", []), operator_asn, source)
    where_net = f"{source}: {_where('net', net)}" if net is not None else source
    asn = _int(net, "asn", where_net, required=True) if net is not None else operator_asn
    assert asn is not None
    net_id = _int(net, "id", where_net) if net is not None else None

    def mine(r: Record, asn_key: str, where: str) -> bool:
        if net_id is not None and _int(r, "net_id", where) == net_id:
            return True
        return _int(r, asn_key, where) == asn

    ixs = _by_id(tables.get("ix", []), "ix", source)
    ixlans = _by_id(tables.get("ixlan", []), "ixlan", source)
    facs = _by_id(tables.get("fac", []), "fac", source)

    ports: dict[int, list[IxPort]] = {}
    names: dict[int, str] = {}
    for r in tables.get("netixlan", []):
        where = f"{source}: {_where('netixlan', r)}"
        if not mine(r, "asn", where):
            continue
        ix_id = _int(r, "ix_id", where)
        lan_id = _int(r, "ixlan_id", where)
        lan = ixlans.get(lan_id) if lan_id is not None else None
        if ix_id is None and lan is not None:
            ix_id = _int(lan, "ix_id", f"{source}: {_where('ixlan', lan)}")
        if ix_id is None:
            raise PeeringdbError(f"{where}: neither ix_id nor a known ixlan_id says which IX")
        speed = _int(r, "speed", where) or 0
        if speed < 0:
            raise PeeringdbError(f"{where}: speed must not be negative, got {speed}")
        lan_name = _text(lan, "name", where) if lan is not None else ""
        ports.setdefault(ix_id, []).append(
            IxPort(
                lan_name=lan_name,
                speed_mbps=speed,
                ipaddr4=_address(r, "ipaddr4", 4, where),
                ipaddr6=_address(r, "ipaddr6", 6, where),
                is_rs_peer=_bool(r, "is_rs_peer", where, False),
                operational=_bool(r, "operational", where, True),
            )
        )
        port_name = _text(r, "name", where)  # "IX" or "IX: LAN" (API answers)
        if port_name:
            names.setdefault(ix_id, port_name.split(": ", 1)[0])

    exchanges = []
    for ix_id, found in ports.items():
        ix = ixs.get(ix_id, {})
        wix = f"{source}: ix {ix_id}"
        exchanges.append(
            Exchange(
                ix_id=ix_id,
                name=_text(ix, "name", wix) or names.get(ix_id, f"IX {ix_id}"),
                name_long=_text(ix, "name_long", wix),
                city=_text(ix, "city", wix),
                country=_text(ix, "country", wix),
                region=_text(ix, "region_continent", wix),
                website=_website(_text(ix, "website", wix)),
                ports=tuple(sorted(found, key=lambda p: (p.ipaddr4 or "", p.ipaddr6 or ""))),
            )
        )
    exchanges.sort(key=lambda x: (x.country, x.city, x.name.lower(), x.ix_id))

    facilities: dict[int, Facility] = {}
    for r in tables.get("netfac", []):
        where = f"{source}: {_where('netfac', r)}"
        if not mine(r, "local_asn", where):
            continue
        fac_id = _int(r, "fac_id", where, required=True)
        assert fac_id is not None
        fac = facs.get(fac_id)
        wfac = f"{source}: fac {fac_id}"
        src = fac if fac is not None else r  # netfac repeats name, city, country
        facilities[fac_id] = Facility(
            fac_id=fac_id,
            name=_text(src, "name", wfac) or f"facility {fac_id}",
            city=_text(src, "city", wfac),
            country=_text(src, "country", wfac),
            address=_text(fac, "address1", wfac) if fac is not None else "",
            clli=_text(fac, "clli", wfac) if fac is not None else "",
            latitude=_float(fac, "latitude", wfac) if fac is not None else None,
            longitude=_float(fac, "longitude", wfac) if fac is not None else None,
            local_asn=_int(r, "local_asn", where),
        )
    fac_list = sorted(facilities.values(), key=lambda f: (f.country, f.city, f.name.lower()))

    n: Record = net if net is not None else {}
    return PeeringLocations(
        source=source,
        asn=asn,
        name=_text(n, "name", where_net) or f"AS{asn}",
        irr_as_set=_text(n, "irr_as_set", where_net),
        policy_general=_text(n, "policy_general", where_net),
        policy_url=_website(_text(n, "policy_url", where_net)),
        website=_website(_text(n, "website", where_net)),
        exchanges=tuple(exchanges),
        facilities=tuple(fac_list),
    )


def _website(url: str) -> str:
    """Only http(s) links are shown as links."""
    return url if url.startswith(("https://", "http://")) else ""


def load(path: str | Path, operator_asn: int | None = None) -> PeeringLocations:
    """The operator's peering locations from the export at ``path`` (file or directory)."""
    p = Path(path).expanduser()
    source = str(path)
    if p.is_dir():
        return _locations(_directory_tables(p, source), operator_asn, source)
    return _locations(_tables(_read_json(p, source), source), operator_asn, source)


_cache: dict[tuple[str, int | None], tuple[tuple[int, int], PeeringLocations]] = {}
_cache_lock = threading.Lock()


def _stamp(p: Path) -> tuple[int, int]:
    """What tells a changed export: the newest mtime and the total size (a directory: its
    object files)."""
    files = [p / f"{k}.json" for k in OBJECT_TYPES] if p.is_dir() else [p]
    stats = [f.stat() for f in files if f.exists()]
    return max((s.st_mtime_ns for s in stats), default=0), sum(s.st_size for s in stats)


def load_cached(path: str | Path, operator_asn: int | None = None) -> PeeringLocations:
    """:func:`load`, answered from memory while the file is unchanged (a dump is big)."""
    p = Path(path).expanduser()
    try:
        stamp = _stamp(p)
    except OSError as exc:
        raise PeeringdbError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    key = (str(p.resolve()), operator_asn)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    found = load(path, operator_asn)
    with _cache_lock:
        _cache[key] = (stamp, found)
    return found
