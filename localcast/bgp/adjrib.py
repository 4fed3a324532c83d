"""Adj-RIB-In of one session: the routes we accepted, what we refused and why, and deltas.

:meth:`AdjRibIn.apply` takes one decoded UPDATE, runs the neighbor's
:class:`~localcast.bgp.policy.ImportPolicy` over its announcements, and
returns the :class:`RibDelta` it caused (announced with attributes,
withdrawn), which the speaker hands to the relay. :meth:`AdjRibIn.clear`
is the session going down: everything withdrawn.

Routes are held as packed prefix -> :class:`PathAttributes`, one dict per
family; the attributes object is shared by every prefix of the UPDATE that
carried it, and its ``next_hop`` is the one that applies to the family. For
prefixes the policy refused we keep only the reason, so counts per reason
stay exact as routes come and go.

Pure bookkeeping: no I/O, no clock, no knowledge of sessions or sockets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from localcast.bgp import prefix as pfx
from localcast.bgp.messages import PathAttributes, Update
from localcast.bgp.policy import ImportPolicy, Reason
from localcast.bgp.prefix import Afi


@dataclass(frozen=True)
class Announce:
    afi: Afi
    attributes: PathAttributes
    prefixes: tuple[int, ...]


@dataclass(frozen=True)
class Withdraw:
    afi: Afi
    prefixes: tuple[int, ...]


@dataclass(frozen=True)
class RibDelta:
    announce: tuple[Announce, ...] = ()
    withdraw: tuple[Withdraw, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.announce and not self.withdraw

    @property
    def announced(self) -> int:
        return sum(len(a.prefixes) for a in self.announce)

    @property
    def withdrawn(self) -> int:
        return sum(len(w.prefixes) for w in self.withdraw)


@dataclass
class RibCounters:
    updates: int = 0
    treat_as_withdraw: int = 0  # prefixes withdrawn because their UPDATE was malformed (7606)
    rejected_total: Counter[str] = field(default_factory=Counter)  # cumulative, by reason


class AdjRibIn:
    def __init__(self, policy: ImportPolicy) -> None:
        self.policy = policy
        self.routes: dict[Afi, dict[int, PathAttributes]] = {Afi.IPV4: {}, Afi.IPV6: {}}
        self.filtered: dict[Afi, dict[int, Reason]] = {Afi.IPV4: {}, Afi.IPV6: {}}
        self.filtered_by_reason: Counter[str] = Counter()  # currently held, by reason
        self.counters = RibCounters()
        self.max_prefix_alarm = False
        self._derived: dict[tuple[int, str], tuple[PathAttributes, PathAttributes]] = {}

    # --- reading ----------------------------------------------------------------------------

    @property
    def accepted(self) -> int:
        return len(self.routes[Afi.IPV4]) + len(self.routes[Afi.IPV6])

    @property
    def received(self) -> int:
        return self.accepted + len(self.filtered[Afi.IPV4]) + len(self.filtered[Afi.IPV6])

    def get(self, afi: Afi, prefix: int) -> PathAttributes | None:
        return self.routes[afi].get(prefix)

    def lookup(self, text: str) -> PathAttributes | None:
        afi, p = pfx.parse(text)
        return self.routes[afi].get(p)

    def reason(self, text: str) -> Reason | None:
        afi, p = pfx.parse(text)
        return self.filtered[afi].get(p)

    def items(self) -> Iterator[tuple[Afi, int, PathAttributes]]:
        for afi, table in self.routes.items():
            for p, attrs in table.items():
                yield afi, p, attrs

    def snapshot(self) -> list[Announce]:
        """Everything held, grouped by shared attributes (a full resync's announce list)."""
        groups: dict[tuple[Afi, int], tuple[PathAttributes, list[int]]] = {}
        for afi, table in self.routes.items():
            for p, attrs in table.items():
                key = (afi, id(attrs))
                group = groups.get(key)
                if group is None:
                    groups[key] = (attrs, [p])
                else:
                    group[1].append(p)
        return [Announce(afi, attrs, tuple(ps)) for (afi, _), (attrs, ps) in groups.items()]

    # --- changing ---------------------------------------------------------------------------

    def apply(self, update: Update) -> RibDelta:
        self.counters.updates += 1
        announce: list[Announce] = []
        withdraw: list[Withdraw] = []
        if update.withdrawn:
            self._withdraw(Afi.IPV4, update.withdrawn, withdraw)
        if update.mp_unreach is not None and update.mp_unreach.withdrawn:
            self._withdraw(Afi(update.mp_unreach.afi), update.mp_unreach.withdrawn, withdraw)
        reach: list[tuple[Afi, tuple[int, ...], PathAttributes]] = []
        attrs = update.attributes or PathAttributes()
        if update.nlri:
            reach.append((Afi.IPV4, update.nlri, attrs))
        mp = update.mp_reach
        if mp is not None and mp.nlri:
            reach.append((Afi(mp.afi), mp.nlri, self._with_next_hop(attrs, mp.next_hop)))
        if update.attribute_error is not None:  # RFC 7606 treat-as-withdraw
            for afi, prefixes, _ in reach:
                self.counters.treat_as_withdraw += len(prefixes)
                self._withdraw(afi, prefixes, withdraw)
        else:
            for afi, prefixes, route_attrs in reach:
                self._announce(afi, prefixes, route_attrs, announce, withdraw)
        return RibDelta(tuple(announce), tuple(withdraw))

    def _with_next_hop(self, attrs: PathAttributes, next_hop: str) -> PathAttributes:
        """``attrs`` with the MP next hop, one shared object per (attributes, next hop)."""
        if attrs.next_hop == next_hop:
            return attrs
        key = (id(attrs), next_hop)
        hit = self._derived.get(key)
        if hit is not None and hit[0] is attrs:
            return hit[1]
        if len(self._derived) >= 65536:
            self._derived.clear()
        derived = replace(attrs, next_hop=next_hop)
        self._derived[key] = (attrs, derived)  # holds attrs: its id stays unique
        return derived

    def clear(self) -> RibDelta:
        """The session is gone: withdraw everything."""
        withdraw = tuple(Withdraw(afi, tuple(table)) for afi, table in self.routes.items() if table)
        for afi in (Afi.IPV4, Afi.IPV6):
            self.routes[afi] = {}
            self.filtered[afi] = {}
        self.filtered_by_reason.clear()
        self.max_prefix_alarm = False
        return RibDelta((), withdraw)

    def _unfilter(self, afi: Afi, prefix: int) -> None:
        reason = self.filtered[afi].pop(prefix, None)
        if reason is not None:
            self.filtered_by_reason[reason] -= 1

    def _filter(self, afi: Afi, prefix: int, reason: Reason) -> None:
        self._unfilter(afi, prefix)
        self.filtered[afi][prefix] = reason
        self.filtered_by_reason[reason] += 1
        self.counters.rejected_total[reason] += 1

    def _withdraw(self, afi: Afi, prefixes: tuple[int, ...], out: list[Withdraw]) -> None:
        routes, filtered = self.routes[afi], self.filtered[afi]
        gone = []
        for p in prefixes:
            if routes.pop(p, None) is not None:
                gone.append(p)
            elif filtered:
                self._unfilter(afi, p)
        if gone:
            out.append(Withdraw(afi, tuple(gone)))

    def _announce(
        self,
        afi: Afi,
        prefixes: tuple[int, ...],
        attrs: PathAttributes,
        announce: list[Announce],
        withdraw: list[Withdraw],
    ) -> None:
        accepted, rejected = self.policy.classify(afi, prefixes, attrs)
        routes, filtered = self.routes[afi], self.filtered[afi]
        if rejected:
            gone = []
            for p, reason in rejected:
                if routes.pop(p, None) is not None:  # it was accepted before: implicit withdraw
                    gone.append(p)
                self._filter(afi, p, reason)
            if gone:
                withdraw.append(Withdraw(afi, tuple(gone)))
        limit = self.policy.max_prefixes
        taken: list[int] = []
        if limit is None and not filtered:  # the fast path of a full table
            for p in accepted:
                routes[p] = attrs
            taken = accepted
        else:
            held = self.accepted
            for p in accepted:
                if filtered:
                    self._unfilter(afi, p)
                if p not in routes:
                    if limit is not None and held >= limit:
                        self._filter(afi, p, Reason.MAX_PREFIXES)
                        self.max_prefix_alarm = True
                        continue
                    held += 1
                routes[p] = attrs
                taken.append(p)
        if taken:
            announce.append(Announce(afi, attrs, tuple(taken)))
