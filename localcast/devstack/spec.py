"""What a local stack is made of, and the topology document it applies. Pure.

A :class:`StackSpec` names the partners and sites (as the topology file has
them) and the appliances to *run*; each appliance gets its URL only once its
process listens (port 0), so :func:`topology_document` takes the URLs then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localcast.control.topology import PartnerSpec, SiteSpec


@dataclass(frozen=True)
class NodeSpec:
    """One appliance to run: a ``localcast appliance serve`` and its reporter.

    ``serves_origin``: its store is the control plane's origin store itself
    (the last-resort origin appliance), not a store of its own.

    For fault tests, a node can live elsewhere than plain loopback:
    ``netns`` runs its processes (serve, reporter, fill agent) inside that
    network namespace (made by the caller, ``ip netns exec``), ``listen`` is
    the address it serves on there, and ``control_url`` is how its reporter
    and fill agent reach the control plane from there (a forwarder of the
    caller's; default the stack's own URL). ``fill_reserve_mb``: the fill
    agent's ``--reserve-mb`` (default the agent's).
    """

    id: str
    site: str
    gbps: float = 10.0
    disk_gb: float = 10.0
    serves_origin: bool = False
    listen: str = "127.0.0.1"
    netns: str | None = None
    control_url: str | None = None
    fill_reserve_mb: float | None = None


@dataclass(frozen=True)
class StackSpec:
    sites: tuple[SiteSpec, ...]
    appliances: tuple[NodeSpec, ...]
    partners: tuple[PartnerSpec, ...] = ()
    # [control] settings of the stack's control plane (port and listen are the stack's)
    control: Mapping[str, Any] = field(default_factory=dict)

    def node(self, appliance_id: str) -> NodeSpec:
        for n in self.appliances:
            if n.id == appliance_id:
                return n
        raise KeyError(appliance_id)

    def site(self, site_id: str) -> SiteSpec:
        for s in self.sites:
            if s.id == site_id:
                return s
        raise KeyError(site_id)

    def site_of(self, appliance_id: str) -> SiteSpec:
        return self.site(self.node(appliance_id).site)


def topology_document(spec: StackSpec, urls: Mapping[str, str]) -> dict[str, Any]:
    """The topology (``POST /v1/topology`` body) with each appliance at ``urls[id]``."""
    return {
        "partners": [p.model_dump(mode="json") for p in spec.partners],
        "sites": [s.model_dump(mode="json", exclude_none=True) for s in spec.sites],
        "appliances": [
            {"id": n.id, "site": n.site, "url": urls[n.id], "disk_gb": n.disk_gb, "gbps": n.gbps}
            for n in spec.appliances
        ],
    }


def control_config_toml(settings: Mapping[str, Any]) -> str:
    """A ``config.toml`` holding a ``[control]`` table of scalar ``settings``."""
    lines = ["[control]"]
    for key, value in settings.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        elif isinstance(value, str):
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            raise TypeError(f"[control] {key}: only scalars are supported here")
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
