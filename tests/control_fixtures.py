"""Helpers for control plane tests: synthetic titles on disk, snapshots, a fake clock.

No video here: a synthetic title is a schema-valid manifest whose files are a
few bytes each, named by their sha256 like real ones, so import, inventory
and steering see exactly what they would see after an ingest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from localcast.config import load_config
from localcast.control.app import create_app
from localcast.control.service import ControlPlane
from localcast.control.settings import ControlSettings
from localcast.control.snapshot import catalog_entry
from localcast.control.topology import parse_topology
from localcast.core.fleet import (
    Appliance,
    ApplianceState,
    FleetSnapshot,
    Health,
    Load,
    Site,
    SiteKind,
    frozen_map,
)
from localcast.core.routes import Route, RouteTable
from localcast.media.manifest import FileRef, Rendition, Segment, TitleManifest

NOW = 1_800_000_000.0


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


# --- synthetic titles ------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticTitle:
    manifest: TitleManifest
    files: dict[str, bytes]  # file name -> content

    @property
    def title_id(self) -> str:
        return self.manifest.title_id

    def write(self, root: Path, with_manifest: bool = True) -> Path:
        """Write the title under ``root/<title_id>/`` (an origin or appliance store)."""
        d = root / self.title_id
        d.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (d / name).write_bytes(data)
        if with_manifest:
            (d / "manifest.json").write_text(json.dumps(self.manifest.to_json()))
        return d


def synthetic_title(
    title_id: str = "t1",
    segments: int = 5,
    segment_s: float = 4.0,
    heights: tuple[int, ...] = (360, 720),
) -> SyntheticTitle:
    files: dict[str, bytes] = {}

    def ref(label: str, ext: str) -> FileRef:
        data = f"{title_id}:{label}".encode() * 4
        sha = hashlib.sha256(data).hexdigest()
        files[f"{sha}.{ext}"] = data
        return FileRef(sha, ext, len(data))

    def rendition(rid: str, kind: str, codec: str, height: int) -> Rendition:
        segs = tuple(
            Segment(i, i * segment_s, segment_s, ref(f"{rid}/seg{i}", "m4s"))
            for i in range(segments)
        )
        return Rendition(
            id=rid,
            kind=kind,
            codec=codec,
            bandwidth=height * 3000 if kind == "video" else 128_000,
            average_bandwidth=height * 2500 if kind == "video" else 120_000,
            init=ref(f"{rid}/init", "mp4"),
            playlist=ref(f"{rid}/playlist", "m3u8"),
            segments=segs,
            width=height * 16 // 9 if kind == "video" else 0,
            height=height if kind == "video" else 0,
            frame_rate=25.0 if kind == "video" else 0.0,
            channels=2 if kind == "audio" else 0,
            sample_rate=48000 if kind == "audio" else 0,
        )

    videos = tuple(rendition(f"v{h}", "video", "avc1.64001f", h) for h in heights)
    renditions = (*videos, rendition("a0", "audio", "mp4a.40.2", 0))
    manifest = TitleManifest(
        title_id=title_id,
        name=f"Synthetic {title_id}",
        duration_s=segments * segment_s,
        segment_duration_s=segment_s,
        source_sha256="0" * 64,
        renditions=renditions,
        multivariant=ref("master", "m3u8"),
        mpd=ref("mpd", "mpd"),
    )
    return SyntheticTitle(manifest, files)


# --- a topology --------------------------------------------------------------------------------

TOPOLOGY: dict[str, Any] = {
    "partners": [{"name": "isp-a", "asns": [64501]}, {"name": "isp-b", "asns": [64502]}],
    "sites": [
        {
            "id": "a-par",
            "kind": "embedded",
            "partner": "isp-a",
            "lat": 48.85,
            "lon": 2.35,
            "tz": "Europe/Paris",
            "prefixes": ["10.1.0.0/16", "127.0.1.0/24"],
        },
        {
            "id": "b-lys",
            "kind": "pni",
            "partner": "isp-b",
            "lat": 45.76,
            "lon": 4.83,
            "tz": "Europe/Paris",
            "prefixes": ["10.2.0.0/16", "127.0.2.0/24"],
        },
        {"id": "ix-fra", "kind": "ix", "lat": 50.11, "lon": 8.68, "tz": "Europe/Berlin"},
        {"id": "origin", "kind": "origin", "lat": 37.4, "lon": -122.1, "tz": "America/Los_Angeles"},
    ],
    "appliances": [
        {"id": "a1", "site": "a-par", "url": "http://127.0.0.1:18101", "disk_gb": 10, "gbps": 10},
        {"id": "a2", "site": "a-par", "url": "http://127.0.0.1:18102", "disk_gb": 10, "gbps": 10},
        {"id": "b1", "site": "b-lys", "url": "http://127.0.0.1:18201", "disk_gb": 10, "gbps": 10},
        {"id": "ix1", "site": "ix-fra", "url": "http://127.0.0.1:18301", "disk_gb": 10, "gbps": 40},
        {"id": "o1", "site": "origin", "url": "http://127.0.0.1:18001", "disk_gb": 99, "gbps": 10},
    ],
}


ALL_APPLIANCES = tuple(a["id"] for a in TOPOLOGY["appliances"])


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def topology_toml(doc: dict[str, Any]) -> str:
    """``doc`` (arrays of flat tables) as TOML."""
    out = []
    for section, items in doc.items():
        for item in items:
            out.append(f"[[{section}]]")
            out += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
            out.append("")
    return "\n".join(out)


# --- a control plane in process ------------------------------------------------------------


def make_plane(root: Path, clock: FakeClock, **settings: Any) -> ControlPlane:
    """A control plane at ``root/home``. Turn-up gating is off unless asked for
    (``turnup_required=True``): these appliances' URLs have nothing behind them."""
    settings.setdefault("turnup_required", False)
    config = load_config(root / "home")
    config.paths.ensure()
    return ControlPlane.open(config, ControlSettings(**settings), clock=clock)


def client_for(plane: ControlPlane, ip: str = "10.1.2.3") -> TestClient:
    return TestClient(create_app(plane, background_refresh=False), client=(ip, 50000))


def provision(plane: ControlPlane, title: SyntheticTitle) -> dict[str, str]:
    """Apply :data:`TOPOLOGY`, import ``title``; the appliance credentials."""
    out = plane.apply_topology(parse_topology(TOPOLOGY))
    plane.import_manifests([title.manifest])
    return out.credentials


def bring_up(
    client: TestClient,
    credentials: dict[str, str],
    holdings: dict[str, list[SyntheticTitle]],
    interval_s: float = 5.0,
) -> None:
    """Register each appliance of ``holdings`` and send a full inventory of its titles."""
    for aid, titles in holdings.items():
        auth = {"Authorization": f"Bearer {credentials[aid]}"}
        r = client.post(
            f"/v1/appliances/{aid}/register",
            json={"heartbeat_interval_s": interval_s},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        inv = {t.title_id: sorted(t.files) for t in titles}
        r = client.post(
            f"/v1/appliances/{aid}/heartbeat",
            json={"inventory": {"kind": "full", "seq": 1, "titles": inv}},
            headers=auth,
        )
        assert r.status_code == 200, r.text


def beat(client: TestClient, credentials: dict[str, str], *aids: str) -> None:
    for aid in aids:
        r = client.post(
            f"/v1/appliances/{aid}/heartbeat",
            json={},
            headers={"Authorization": f"Bearer {credentials[aid]}"},
        )
        assert r.status_code == 200, r.text


# --- snapshots built by hand, for the pure steering tests --------------------------------------


def site(
    sid: str, kind: SiteKind, prefixes: tuple[str, ...] = (), partner: str | None = None
) -> Site:
    return Site(sid, kind, partner, 0.0, 0.0, "UTC", prefixes)


def alive_health(now: float = NOW, interval_s: float = 5.0) -> Health:
    return Health(interval_s, now - 1.0, now - 100.0, 20)


def appliance(
    aid: str,
    site_id: str,
    gbps: float = 10.0,
    titles: tuple[str, ...] = ("t1",),
    health: Health | None = None,
    state: ApplianceState = ApplianceState.REGISTERED,
    drained: bool = False,
    load: Load | None = None,
) -> Appliance:
    return Appliance(
        id=aid,
        site_id=site_id,
        base_url=f"http://{aid}.test:8080",
        disk_bytes=10**12,
        gbps=gbps,
        state=state,
        health=health or alive_health(),
        drained=drained,
        titles=frozenset(titles),
        load=load or Load(),
    )


def snapshot(
    sites: list[Site], appliances: list[Appliance], title_ids: tuple[str, ...] = ("t1",)
) -> FleetSnapshot:
    import ipaddress

    routes = [Route(ipaddress.ip_network(p), s.id) for s in sites for p in s.prefixes]
    return FleetSnapshot(
        version=7,
        sites=frozen_map({s.id: s for s in sites}),
        appliances=frozen_map({a.id: a for a in appliances}),
        catalog=frozen_map({t: catalog_entry(synthetic_title(t).manifest) for t in title_ids}),
        routes=RouteTable.build(routes),
    )
