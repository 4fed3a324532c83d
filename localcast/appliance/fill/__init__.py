"""The appliance's fill agent (``localcast appliance fill``): see :mod:`.agent`.

Modules: ``schema`` (manifest and report JSON), ``control`` (the two calls),
``plan`` (what to fetch and evict, pure), ``download`` (one ranged, verified
transfer), ``store`` (parts, publish by rename, deletions), ``disk`` (capacity
and free space), ``ratelimit`` (the token bucket), ``reports`` (batched,
retried), ``agent`` (the loop).
"""

from localcast.appliance.fill.agent import AgentSettings, FillAgent, PassResult, run_fill_agent
from localcast.appliance.fill.schema import FillManifest, FillReport, FillState, ManifestError

__all__ = [
    "AgentSettings",
    "FillAgent",
    "FillManifest",
    "FillReport",
    "FillState",
    "ManifestError",
    "PassResult",
    "run_fill_agent",
]
