"""HLS Content Steering on the client side: the steering manifest and pathway order. Pure.

The steering server (our control plane) answers
``{"VERSION":1,"TTL":s,"RELOAD-URI":...,"PATHWAY-PRIORITY":[...]}``; the
client reloads it after TTL seconds from RELOAD-URI (resolved against the
manifest's own URI), telling the server its current pathway and measured
throughput in the ``_HLS_pathway`` and ``_HLS_throughput`` query parameters.

Which pathway to use is :func:`pathway_order`: the server's priority first,
then pathways it did not list (in the playback response's rank order), with
pathways that recently failed pushed to the back until their penalty expires.
The player uses the head of that order; a failure penalises the pathway and
takes the next head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

DEFAULT_TTL_S = 300.0


class SteeringError(ValueError):
    """A steering manifest is malformed."""


@dataclass(frozen=True)
class SteeringManifest:
    version: int
    ttl_s: float
    reload_uri: str  # absolute
    pathway_priority: tuple[str, ...]


def parse_steering(data: Any, url: str) -> SteeringManifest:
    """Validate a steering manifest fetched from ``url``."""
    if not isinstance(data, dict):
        raise SteeringError("steering manifest: expected a JSON object")
    version = data.get("VERSION")
    if version != 1:
        raise SteeringError(f"steering manifest: unsupported VERSION {version!r}")
    ttl = data.get("TTL", DEFAULT_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise SteeringError("steering manifest: TTL must be a positive number")
    priority = data.get("PATHWAY-PRIORITY", [])
    if not isinstance(priority, list) or not all(isinstance(p, str) for p in priority):
        raise SteeringError("steering manifest: PATHWAY-PRIORITY must be a list of strings")
    reload_uri = data.get("RELOAD-URI")
    if reload_uri is not None and not isinstance(reload_uri, str):
        raise SteeringError("steering manifest: RELOAD-URI must be a string")
    return SteeringManifest(
        version=1,
        ttl_s=float(ttl),
        reload_uri=urljoin(url, reload_uri) if reload_uri else url,
        pathway_priority=tuple(priority),
    )


def steering_request_url(uri: str, pathway_id: str | None, throughput_bps: float | None) -> str:
    """``uri`` with ``_HLS_pathway`` and ``_HLS_throughput`` set (replacing any present)."""
    parts = urlsplit(uri)
    query = [
        (k, v) for k, v in parse_qsl(parts.query) if k not in ("_HLS_pathway", "_HLS_throughput")
    ]
    if pathway_id is not None:
        query.append(("_HLS_pathway", pathway_id))
    if throughput_bps is not None:
        query.append(("_HLS_throughput", str(int(throughput_bps))))
    return urlunsplit(parts._replace(query=urlencode(query)))


def pathway_order(
    available: Sequence[str],
    priority: Sequence[str],
    penalized_until: Mapping[str, float],
    now_s: float,
) -> tuple[str, ...]:
    """Pathways to try, best first.

    ``available`` is every pathway the presentation can use, in the control
    plane's rank order; ``priority`` the steering server's latest order;
    ``penalized_until`` when each failed pathway may be trusted again.
    """
    known = set(available)
    listed = [p for p in dict.fromkeys(priority) if p in known]
    ordered = listed + [p for p in available if p not in listed]
    healthy = [p for p in ordered if penalized_until.get(p, float("-inf")) <= now_s]
    # failed ones stay usable as a last resort, the longest-recovered first
    benched = sorted(
        (p for p in ordered if p not in healthy), key=lambda p: penalized_until.get(p, 0.0)
    )
    return tuple(healthy + benched)
