"""Topology route: apply a topology document (the TOML file's structure, as JSON).

* ``POST /v1/topology?dry_run=false``  -> what changed and the credentials of new
  appliances (shown once); 422 with one line per problem, each naming its field
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from localcast.control.deps import Admin, Plane
from localcast.control.errors import Invalid
from localcast.control.schemas import TopologyApplied
from localcast.control.topology import TopologyError, parse_topology

router = APIRouter()


@router.post("/v1/topology", response_model=TopologyApplied, dependencies=[Admin])
def apply_topology(
    plane: Plane, document: Annotated[dict[str, Any], Body()], dry_run: bool = False
) -> TopologyApplied:
    try:
        spec = parse_topology(document)
    except TopologyError as exc:
        raise Invalid(str(exc), field=str(exc).split(":", 1)[0]) from exc
    out = plane.apply_topology(spec, dry_run=dry_run)
    return TopologyApplied(
        dry_run=dry_run,
        changed=not out.plan.empty,
        changes=out.plan.summary(),
        credentials=out.credentials,
        snapshot_version=out.snapshot_version,
    )
