"""The generated full table the BGP benchmarks announce from BIRD (fixed seeds).

Shared by ``bgp_ingest.py`` and ``bgp_control_plane.py`` (a leading ``_``:
``run_all.py`` does not run it). IPv4: distinct non-bogon /16-/24, mostly
/24; IPv6: distinct /32-/48 inside 2400::/6 (clear of every bogon range),
mostly /48. Each as (network integer, length).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localcast.bgp import prefix as pfx
from localcast.bgp.prefix import Afi


def generate(n: int, seed: int = 42) -> list[tuple[int, int]]:
    """``n`` distinct, non-bogon IPv4 prefixes, /16-/24 (mostly /24), as (network, length)."""
    rng = random.Random(seed)
    lengths = [24] * 6 + [23, 22, 21, 20, 19, 18, 17, 16]
    excluded = {0, 10, 100, 127, 169, 172, 192, 198, 203}
    seen: set[tuple[int, int]] = set()
    out = []
    while len(out) < n:
        length = rng.choice(lengths)
        net = rng.randrange(1 << 24, 223 << 24) & pfx.mask(Afi.IPV4, length)
        if net >> 24 in excluded or (net, length) in seen:
            continue
        seen.add((net, length))
        out.append((net, length))
    return out


def generate_v6(n: int, seed: int = 43) -> list[tuple[int, int]]:
    """``n`` distinct IPv6 prefixes, /32-/48 (mostly /48), inside 2400::/6."""
    rng = random.Random(seed)
    lengths = [48] * 6 + [44, 40, 36, 32]
    seen: set[tuple[int, int]] = set()
    out = []
    while len(out) < n:
        length = rng.choice(lengths)
        top = rng.randrange(0x2400 << 32, 0x2800 << 32)  # the top 48 bits
        net = (top << 80) & pfx.mask(Afi.IPV6, length)
        if (net, length) in seen:
            continue
        seen.add((net, length))
        out.append((net, length))
    return out


def static_routes(afi: Afi, table: list[tuple[int, int]]) -> list[str]:
    """BIRD ``route`` lines (without ``route`` and ``;``): every prefix as a blackhole."""
    return [f"{pfx.to_text(afi, pfx.make(net, ln))} blackhole" for net, ln in table]
