"""Route reports for the ISP: advertisements that differ inside a site, routes with no alternate.

What lives here: two pure reports over a snapshot's learned routes, for the
partner portal and ``GET /v1/routes``. Nothing here changes steering.

* :func:`site_consistency`: Open Connect asks ISPs to advertise the same
  routes to every appliance of a site. For each site with a BGP-speaking
  appliance, the prefixes some of its appliances heard and others did not,
  and the prefixes all heard with different attributes (AS path, origin,
  MED, local preference, communities: what expresses preference; next hop,
  peer and arrival time are per session and not compared). An appliance that
  did not hear a prefix does not serve its clients (steering rule 3), so when
  it holds no covering route either, titles that the site keeps only on it
  are sent *off-site* for those clients: ``off_site`` names those appliances.
* :func:`no_alternate_source`: prefixes heard only from embedded appliances,
  with no PNI or IX appliance hearing the prefix or a covering one. When the
  embedded site fails, those clients can only be reached over transit.
  (Only BGP-learned routes count: an IX site without BGP tells us nothing.)

Both reports cap the prefixes they list (``limit``) and count all of them.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from localcast.core.fleet import FleetSnapshot, SiteKind
from localcast.core.rib import AdjRibIn, Attributes, Path, covering_keys, prefix_text

DEFAULT_LIMIT = 1000
_PEERING = (SiteKind.PNI, SiteKind.IX)


@dataclass(frozen=True)
class AdvertisementDiff:
    """One prefix the appliances of a site do not hear alike."""

    prefix: str
    heard_by: tuple[str, ...]
    missing_from: tuple[str, ...]  # appliances of the site that did not hear it
    off_site: tuple[str, ...]  # of those, the ones without any covering route
    attributes: tuple[tuple[str, Attributes], ...]  # per hearing appliance, when they differ
    reason: str


@dataclass(frozen=True)
class SiteConsistency:
    site_id: str
    appliances: tuple[str, ...]
    missing_count: int  # prefixes heard by some appliances of the site, not all
    attribute_count: int  # prefixes heard by all, with different attributes
    diffs: tuple[AdvertisementDiff, ...]  # at most ``limit``, missing ones first

    @property
    def consistent(self) -> bool:
        return self.missing_count == 0 and self.attribute_count == 0


@dataclass(frozen=True)
class UnprotectedRoute:
    """A prefix only embedded appliances hear."""

    prefix: str
    heard_by: tuple[str, ...]
    sites: tuple[str, ...]


@dataclass(frozen=True)
class NoAlternateReport:
    count: int
    routes: tuple[UnprotectedRoute, ...]  # at most ``limit``, in prefix order


def _has_covering(rib: AdjRibIn, version: int, key: int) -> bool:
    table = rib.table(version)
    return any(k in table for k in covering_keys(version, key))


def _site_report(site_id: str, ribs: Mapping[str, AdjRibIn], limit: int) -> SiteConsistency:
    apps = tuple(sorted(ribs))
    missing: list[AdvertisementDiff] = []
    differing: list[AdvertisementDiff] = []
    missing_count = attribute_count = 0
    for version in (4, 6):
        tables = {a: ribs[a].table(version) for a in apps}
        key_sets = [set(t.keys()) for t in tables.values()]
        union = set().union(*key_sets)
        common = set.intersection(*key_sets) if key_sets else set()
        partial = union - common
        missing_count += len(partial)
        for key in sorted(partial):
            if len(missing) >= limit:
                break
            heard = tuple(a for a in apps if key in tables[a])
            absent = tuple(a for a in apps if key not in tables[a])
            off = tuple(a for a in absent if not _has_covering(ribs[a], version, key))
            text = prefix_text(version, key)
            reason = f"{text} heard by {', '.join(heard)}, not by {', '.join(absent)}"
            if off:
                reason += (
                    f"; {', '.join(off)} hold no covering route: clients in {text} are sent "
                    f"off-site for titles the site keeps only there"
                )
            missing.append(AdvertisementDiff(text, heard, absent, off, (), reason))
        if len(apps) < 2:
            continue
        first = tables[apps[0]]
        rest = [tables[a] for a in apps[1:]]
        for key in common:
            attrs = first[key].attributes
            if all(_same(t[key], attrs) for t in rest):
                continue
            attribute_count += 1
            if len(differing) < limit:
                text = prefix_text(version, key)
                per = tuple((a, tables[a][key].attributes) for a in apps)
                differing.append(
                    AdvertisementDiff(
                        text,
                        apps,
                        (),
                        (),
                        per,
                        f"{text} heard by every appliance of {site_id} with different attributes",
                    )
                )
    differing.sort(key=lambda d: d.prefix)
    diffs = (missing + differing)[:limit]
    return SiteConsistency(site_id, apps, missing_count, attribute_count, tuple(diffs))


def _same(path: Path, attrs: Attributes) -> bool:
    return path.attributes is attrs or path.attributes == attrs


def site_consistency(
    snapshot: FleetSnapshot, limit: int = DEFAULT_LIMIT, sites: Collection[str] | None = None
) -> tuple[SiteConsistency, ...]:
    """For every site with a BGP-speaking appliance (of ``sites`` only, when given), what its
    appliances hear differently.

    Every appliance of such a site counts: one without an Adj-RIB-In hears
    nothing. A site's report reads its own appliances' routes only.
    """
    learned = snapshot.routes.learned
    out: list[SiteConsistency] = []
    speaking = snapshot.speaking_sites if sites is None else snapshot.speaking_sites & set(sites)
    for site_id in sorted(speaking):
        ribs = {
            a.id: learned.ribs.get(a.id, AdjRibIn(a.id)) for a in snapshot.appliances_at(site_id)
        }
        out.append(_site_report(site_id, ribs, limit))
    return tuple(out)


def no_alternate_source(snapshot: FleetSnapshot, limit: int = DEFAULT_LIMIT) -> NoAlternateReport:
    """Prefixes heard only from embedded appliances, with no PNI/IX route covering them."""
    learned = snapshot.routes.learned
    kind_of: dict[str, SiteKind] = {}
    for aid in learned.ribs:
        appliance = snapshot.appliances.get(aid)
        if appliance is not None and appliance.site_id in snapshot.sites:
            kind_of[aid] = snapshot.sites[appliance.site_id].kind
    peering_ribs = [learned.ribs[a] for a, k in kind_of.items() if k in _PEERING]
    routes: list[UnprotectedRoute] = []
    count = 0
    for version in (4, 6):
        peering_keys: set[int] = set()
        for rib in peering_ribs:
            peering_keys.update(rib.table(version).keys())
        lonely: list[tuple[int, tuple[str, ...]]] = []
        embedded_only: dict[tuple[str, ...], bool] = {}
        for key, route_set in learned.prefixes(version):
            only = embedded_only.get(route_set)
            if only is None:
                kinds = {kind_of.get(a) for a in route_set}
                only = kinds == {SiteKind.EMBEDDED}
                embedded_only[route_set] = only
            if not only:
                continue
            if peering_keys and any(k in peering_keys for k in covering_keys(version, key)):
                continue
            lonely.append((key, route_set))
        count += len(lonely)
        for key, route_set in sorted(lonely)[: max(0, limit - len(routes))]:
            sites = sorted({snapshot.appliances[a].site_id for a in route_set})
            routes.append(UnprotectedRoute(prefix_text(version, key), route_set, tuple(sites)))
    return NoAlternateReport(count, tuple(routes))
