"""The demo's fleet: one ISP with two embedded appliances, an IX site, the origin. Pure data.

Clients pick their network by their loopback source address: 127.0.1.x is
inside the ISP's prefix (served by its embedded appliances), anything else
(127.0.2.x, or a browser on 127.0.0.1) is outside it and is served over
peering by the IX appliance; the origin appliance is every client's last resort.
"""

from __future__ import annotations

from pathlib import Path

from localcast.control.topology import PartnerSpec, SiteSpec
from localcast.core.fleet import SiteKind
from localcast.devstack.spec import NodeSpec, StackSpec

# where the operator peers, for the portal's peering page (present in a source checkout)
PEERINGDB_SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "peeringdb.json"
PEERING = (
    {"peeringdb_file": str(PEERINGDB_SAMPLE), "operator_asn": 64496}
    if PEERINGDB_SAMPLE.is_file()
    else {}
)

ISP_PREFIX = "127.0.1.0/24"
INSIDE_CLIENT = "127.0.1.10"  # a subscriber of the demo ISP
OUTSIDE_CLIENT = "127.0.2.20"  # a viewer on another network

EMBEDDED_SITE = "isp-demo-par"
IX_SITE = "ix-ams"
ORIGIN_SITE = "origin"

DEMO_SPEC = StackSpec(
    partners=(PartnerSpec(name="isp-demo", asns=[64500]),),
    sites=(
        SiteSpec(
            id=EMBEDDED_SITE,
            kind=SiteKind.EMBEDDED,
            partner="isp-demo",
            lat=48.8566,
            lon=2.3522,
            tz="Europe/Paris",
            prefixes=[ISP_PREFIX],
        ),
        SiteSpec(id=IX_SITE, kind=SiteKind.IX, lat=52.37, lon=4.9, tz="Europe/Amsterdam"),
        SiteSpec(
            id=ORIGIN_SITE, kind=SiteKind.ORIGIN, lat=37.4, lon=-122.1, tz="America/Los_Angeles"
        ),
    ),
    appliances=(
        NodeSpec("oca-e1", EMBEDDED_SITE),
        NodeSpec("oca-e2", EMBEDDED_SITE),
        NodeSpec("oca-ix1", IX_SITE, gbps=40.0, disk_gb=100.0),
        NodeSpec("origin-1", ORIGIN_SITE, disk_gb=1000.0, serves_origin=True),
    ),
    control=PEERING,
)
