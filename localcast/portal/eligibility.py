"""An appliance request's form and the planner's eligibility answer for it.

A partner asks for embedded appliances with a form: its peak traffic
(Gbit/s), its sites (a name and a share of the traffic each), the rack space
(U) and power (W per appliance) at each site, the ports it can give each
appliance (count and speed), and a note for the operator.
:func:`parse_form` validates the form fields (one clear message per field,
the form never lost); :func:`evaluate` answers with the simulator's planner
(:func:`localcast.sim.planner.plan_capacity`) over a small simulation built
from the form (:func:`build_spec`):

* **the ISP**: its subscribers derived from the peak traffic
  (:data:`PEAK_GBPS_PER_SUBSCRIBER`, the peak of the demand model below per
  subscriber), split between its sites by their shares; each site an
  embedded site hearing its share of 10.0.0.0/8 (the /16s split by share)
  over BGP, its own popularity region, all in UTC;
* **the fleet around it**: an IX site (two appliances) and the origin;
* **catalog and demand** as ``examples/sim.toml`` (1500 titles of 25 to 140
  minutes, a release a day, Zipf 0.9, one 45-minute session per subscriber a
  day), one simulated day in 15-minute slots;
* **the appliance**: :data:`APPLIANCE_U` rack units, :data:`APPLIANCE_W` W,
  serving what its ports carry (count x speed, at most
  :data:`MAX_APPLIANCE_GBPS`); the planner tries :data:`DISK_TB` disks and
  1 .. ``min(MAX_PER_SITE, rack U // APPLIANCE_U)`` appliances per site for
  :data:`TARGET` of the ISP's bytes at its peak hour.

To answer in seconds, a large ISP is simulated at a fraction of its size:
at most :data:`SIM_SUBSCRIBERS` subscribers, with every serving capacity
(appliances, IX) and the eligibility threshold scaled by the same factor;
the Gbit/s figures of the answer are scaled back. Offload depends on the
share of demand the disks hold and on capacity against demand, both kept.

**Eligible** when the planner finds at least ``eligibility_gbps`` (5 Gbit/s)
at the ISP's peak *and* an appliance fits each site (rack space, power).
Pure: no database, no clock.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from localcast.sim.config import PlannerSpec, SimSpec, parse_sim

PORT_SPEEDS_GBPS = (10, 25, 100)
APPLIANCE_U = 2  # rack units of one appliance
APPLIANCE_W = 650  # its power draw at full load, W
MAX_APPLIANCE_GBPS = 100.0  # what one appliance serves at most, whatever its ports
MAX_PER_SITE = 4
DISK_TB = (3.0, 6.0, 12.0)
TARGET = 0.95
ELIGIBILITY_GBPS = PlannerSpec().eligibility_gbps
#: The demand model's peak-hour Gbit/s per subscriber (measured: 30 000 subscribers
#: of the model below peak at 8.7 Gbit/s).
PEAK_GBPS_PER_SUBSCRIBER = 8.73 / 30_000
SIM_SUBSCRIBERS = 20_000  # larger ISPs are simulated scaled down to this
MAX_SITES = 16
MAX_PEAK_GBPS = 10_000.0
MAX_RACK_U = 48
MAX_POWER_W = 20_000
MAX_PORTS = 16
MAX_NAME = 64
MAX_CONTACT = 2000
ISP = "isp"
IX_GBPS = 100.0  # each of the IX site's two appliances
SIXTEENS = 256  # 10.0.0.0/8 in /16s

FIELDS = ("peak_gbps", "sites", "rack_u", "power_w", "port_count", "port_gbps", "contact")


@dataclass(frozen=True)
class SiteShare:
    name: str
    share: float  # of the ISP's traffic, 0..1


@dataclass(frozen=True)
class RequestForm:
    peak_gbps: float
    sites: tuple[SiteShare, ...]
    rack_u: int  # per site
    power_w: int  # per appliance
    port_count: int  # per appliance
    port_gbps: int  # speed of each port
    contact: str = ""

    @property
    def appliance_gbps(self) -> float:
        return float(min(self.port_count * self.port_gbps, MAX_APPLIANCE_GBPS))

    def to_json(self) -> dict[str, Any]:
        return {
            "peak_gbps": self.peak_gbps,
            "sites": [{"name": s.name, "share": s.share} for s in self.sites],
            "rack_u": self.rack_u,
            "power_w": self.power_w,
            "port_count": self.port_count,
            "port_gbps": self.port_gbps,
            "contact": self.contact,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestForm:
        return cls(
            peak_gbps=float(data["peak_gbps"]),
            sites=tuple(SiteShare(str(s["name"]), float(s["share"])) for s in data["sites"]),
            rack_u=int(data["rack_u"]),
            power_w=int(data["power_w"]),
            port_count=int(data["port_count"]),
            port_gbps=int(data["port_gbps"]),
            contact=str(data.get("contact", "")),
        )


# --- validation ---------------------------------------------------------------------------------


def _number(text: str, what: str, lo: float, hi: float, integer: bool) -> tuple[float, str | None]:
    t = text.strip()
    if not t:
        return 0, f"Enter the {what}."
    try:
        v = float(t.replace(",", "."))
    except ValueError:
        return 0, f"Enter the {what} as a number, not {t!r}."
    if not math.isfinite(v):
        return 0, f"Enter the {what} as a number, not {t!r}."
    if integer and v != int(v):
        return 0, f"Enter the {what} as a whole number, not {t}."
    if v < lo or v > hi:
        return 0, f"The {what} must be between {lo:g} and {hi:g}, not {v:g}."
    return v, None


_LINE = re.compile(r"^(?P<name>.*?)(?:[\s,:;=]+(?P<share>\d+(?:[.,]\d+)?)\s*%?)?$")


def parse_sites(text: str) -> tuple[list[SiteShare], str | None]:
    """One site a line, ``name`` or ``name: share%``; unset shares split what is left."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").split("\n") if ln.strip()]
    if not lines:
        return [], "Enter at least one site (one a line, e.g. “Paris: 60%”)."
    if len(lines) > MAX_SITES:
        return [], f"At most {MAX_SITES} sites (you gave {len(lines)})."
    named: list[tuple[str, float | None]] = []
    for i, ln in enumerate(lines, 1):
        m = _LINE.match(ln)
        assert m is not None  # the pattern matches any line
        name = m["name"].strip(" \t,:;=-")
        share = None if m["share"] is None else float(m["share"].replace(",", "."))
        if not name:
            return [], f"Line {i} ({ln!r}): give the site's name or city before its share."
        if len(name) > MAX_NAME:
            return [], f"Line {i}: a site name of at most {MAX_NAME} characters."
        if share is not None and not 0 < share <= 100:
            return [], f"Line {i} ({ln!r}): a share is a percentage above 0 and at most 100."
        named.append((name, share))
    lower = [n.lower() for n, _ in named]
    dupes = sorted({n for n in lower if lower.count(n) > 1})
    if dupes:
        return [], f"Each site once: {', '.join(dupes)} is given twice."
    given = sum(s for _, s in named if s is not None)
    unset = sum(1 for _, s in named if s is None)
    if unset == 0 and abs(given - 100) > 0.5:
        return [], f"The shares add up to {given:g}%, not 100%."
    if unset and given >= 100:
        return [], (
            f"The shares given add up to {given:g}%: nothing is left for the "
            f"{unset} site(s) without a share."
        )
    rest = (100 - given) / unset if unset else 0.0
    shares = [(n, s if s is not None else rest) for n, s in named]
    total = sum(s for _, s in shares)
    return [SiteShare(n, s / total) for n, s in shares], None


def parse_form(fields: Mapping[str, str]) -> tuple[RequestForm | None, dict[str, str]]:
    """The validated form, or None and one message per field in error."""
    errors: dict[str, str] = {}

    def num(key: str, what: str, lo: float, hi: float, integer: bool = True) -> float:
        v, err = _number(fields.get(key, ""), what, lo, hi, integer)
        if err:
            errors[key] = err
        return v

    peak = num("peak_gbps", "peak traffic (Gbit/s)", 0.01, MAX_PEAK_GBPS, integer=False)
    sites, err = parse_sites(fields.get("sites", ""))
    if err:
        errors["sites"] = err
    rack = num("rack_u", "rack space per site (U)", 1, MAX_RACK_U)
    power = num("power_w", "power per appliance (W)", 1, MAX_POWER_W)
    ports = num("port_count", "number of ports per appliance", 1, MAX_PORTS)
    speed_text = fields.get("port_gbps", "").strip().upper().removesuffix("G")
    choices = ", ".join(f"{s}G" for s in PORT_SPEEDS_GBPS)
    speed = 0
    if not speed_text:
        errors["port_gbps"] = f"Choose the port speed ({choices})."
    elif not speed_text.isdigit() or int(speed_text) not in PORT_SPEEDS_GBPS:
        errors["port_gbps"] = f"The port speed is one of {choices}."
    else:
        speed = int(speed_text)
    contact = fields.get("contact", "").strip()
    if len(contact) > MAX_CONTACT:
        errors["contact"] = f"At most {MAX_CONTACT} characters (you wrote {len(contact)})."
    if errors:
        return None, errors
    form = RequestForm(
        peak_gbps=peak,
        sites=tuple(sites),
        rack_u=int(rack),
        power_w=int(power),
        port_count=int(ports),
        port_gbps=speed,
        contact=contact,
    )
    return form, {}


# --- the simulation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sim:
    spec: SimSpec
    scale: float  # real demand / simulated demand (>= 1)
    subscribers: int  # the ISP's, from its peak traffic
    site_ids: dict[str, str]  # simulated site id -> the form's site name
    max_per_site: int


def split_sixteens(shares: list[float], total: int = SIXTEENS) -> list[int]:
    """``total`` /16s between the shares (largest remainder, at least one each)."""
    n = len(shares)
    if n > total:
        raise ValueError("more sites than /16s")
    whole = sum(shares)
    raw = [s * total / whole for s in shares]
    got = [int(r) for r in raw]
    order = sorted(range(n), key=lambda i: (-(raw[i] - got[i]), i))
    for i in order[: total - sum(got)]:
        got[i] += 1
    for i in range(n):  # a tiny share still gets one, from the largest
        if got[i] == 0:
            got[max(range(n), key=lambda j: got[j])] -= 1
            got[i] = 1
    return got


def _site_prefixes(start: int, count: int) -> list[ipaddress.IPv4Network]:
    first = ipaddress.IPv4Address(f"10.{start}.0.0")
    last = ipaddress.IPv4Address(f"10.{start + count - 1}.255.255")
    return list(ipaddress.summarize_address_range(first, last))


def build_spec(form: RequestForm) -> Sim:
    """The small simulation the planner answers over (see the module text)."""
    subscribers = max(1, round(form.peak_gbps / PEAK_GBPS_PER_SUBSCRIBER))
    scale = max(1.0, subscribers / SIM_SUBSCRIBERS)
    simulated = max(len(form.sites), round(subscribers / scale))
    counts = split_sixteens([s.share for s in form.sites])
    isp_prefixes: list[dict[str, Any]] = []
    sites: list[dict[str, Any]] = []
    ids: dict[str, str] = {}
    start = 0
    for k, (site, n16) in enumerate(zip(form.sites, counts, strict=True)):
        sid = f"site-{k + 1}"
        ids[sid] = site.name
        nets = _site_prefixes(start, n16)
        start += n16
        subs = round(simulated * site.share)
        left = subs
        for j, net in enumerate(nets):
            part = left if j == len(nets) - 1 else round(subs * net.num_addresses / (n16 << 16))
            left -= part
            isp_prefixes.append({"prefix": str(net), "subscribers": part, "region": sid})
        sites.append(
            {
                "id": sid,
                "kind": "embedded",
                "isp": ISP,
                "prefixes": [str(n) for n in nets],
                "appliances": [{"count": 1, "disk_tb": DISK_TB[0], "gbps": 1.0}],  # planned
            }
        )
    sites.append(
        {
            "id": "ix",
            "kind": "ix",
            "appliances": [{"count": 2, "disk_tb": 24, "gbps": IX_GBPS / scale}],
        }
    )
    sites.append({"id": "origin", "kind": "origin"})
    max_per_site = max(1, min(MAX_PER_SITE, form.rack_u // APPLIANCE_U))
    doc = {
        "sim": {"seed": 7, "days": 1, "slot_minutes": 15, "warm_start": True},
        "steering": {"max_pathways": 4, "per_site": 2},
        "fill": {"half_life_days": 3.0, "fill_ratio": 0.9, "replica_share": 0.05, "wait_s": 600},
        "isps": [{"id": ISP, "asn": 64500, "tz": "UTC", "prefixes": isp_prefixes}],
        "sites": sites,
        "catalog": {"titles": 1500, "duration_minutes": [25, 140], "releases_per_day": 1},
        "demand": {
            "zipf": 0.9,
            "sessions_per_subscriber": 1.0,
            "session_minutes": 45,
            "regional_skew": 0.3,
        },
        "planner": {
            "isp": ISP,
            "target": TARGET,
            "at": "peak",
            "disk_tb": list(DISK_TB),
            "max_per_site": max_per_site,
            "appliance_gbps": form.appliance_gbps / scale,
            "eligibility_gbps": ELIGIBILITY_GBPS / scale,
        },
    }
    return Sim(parse_sim(doc), scale, subscribers, ids, max_per_site)


# --- the answer ---------------------------------------------------------------------------------

Planner = Callable[[SimSpec], dict[str, Any]]


def _plan(spec: SimSpec) -> dict[str, Any]:
    from localcast.sim.planner import plan_capacity

    return plan_capacity(spec)


def hardware_problems(form: RequestForm) -> list[str]:
    """Why an appliance would not fit the sites as the form describes them."""
    out = []
    if form.rack_u < APPLIANCE_U:
        out.append(
            f"An appliance takes {APPLIANCE_U}U of rack space; each site offers {form.rack_u}U."
        )
    if form.power_w < APPLIANCE_W:
        out.append(f"An appliance draws up to {APPLIANCE_W} W; {form.power_w} W is available.")
    return out


def evaluate(form: RequestForm, plan: Planner = _plan) -> dict[str, Any]:
    """The eligibility answer for a valid form (a JSON-able dict; see the module text)."""
    sim = build_spec(form)
    got = plan(sim.spec)
    e = got["eligibility"]
    ch = got["chosen"]
    k = sim.scale
    peak = float(e["peak_gbps"]) * k
    reasons = []
    if not e["eligible"]:
        reasons.append(
            f"Peak traffic of {peak:.1f} Gbit/s in the simulation of your network, below the "
            f"{ELIGIBILITY_GBPS:g} Gbit/s an embedded appliance needs."
        )
    reasons += hardware_problems(form)
    saving = got["transit_saving"]
    per_site = int(ch["appliances_per_site"])
    return {
        "eligible": bool(e["eligible"]) and not hardware_problems(form),
        "reasons": reasons,
        "peak_gbps": peak,
        "requested_peak_gbps": form.peak_gbps,
        "threshold_gbps": ELIGIBILITY_GBPS,
        "target": float(got["target"]),
        "reached": bool(got["reached"]),
        "offload_at_peak": float(ch["offload_at_peak"]),
        "offload_over_day": float(ch["offload_over_day"]),
        "appliances_per_site": {name: per_site for name in sim.site_ids.values()},
        "appliances": int(ch["appliances"]),
        "disk_tb": float(ch["disk_tb"]),
        "storage_tb": float(ch["storage_tb"]),
        "appliance_gbps": form.appliance_gbps,
        "max_per_site": sim.max_per_site,
        "inbound_peak_gbps_before": float(saving["peak_gbps_before"]) * k,
        "inbound_peak_gbps_after": float(saving["peak_gbps_after"]) * k,
        "inbound_saving_share": float(saving["share"]),
        "first_fill_tb": float(got["fill_cost"]["first_fill_bytes"]) / 1e12,
        "subscribers": sim.subscribers,
        "simulated_subscribers": round(sim.subscribers / k),
        "scale": k,
        "candidates": [
            {
                "appliances_per_site": int(c["appliances_per_site"]),
                "disk_tb": float(c["disk_tb"]),
                "appliances": int(c["appliances"]),
                "offload_at_peak": float(c["offload_at_peak"]),
            }
            for c in got["candidates"]
        ],
    }
