"""The control plane: fleet, catalog, steering, playback sessions, views.

Map of the package (one concept per module):

* ``settings``      the ``[control]`` section of config.toml, validated
* ``db``, ``models``, ``migrations/``  engine, ORM tables, Alembic schema history
* ``repository``    every SQL statement the control plane runs
* ``snapshot``      building the immutable steering snapshot, and its holder
* ``topology``      the topology file: schema, validation, apply plan
* ``credentials``   appliance bearer secrets: issue, hash, verify, store
* ``service``       :class:`ControlPlane`, the shell that ties DB, snapshot and clock
* ``app``           FastAPI assembly; routes live in ``*_api`` modules and ``playback``
* ``server``        running it under uvicorn
* ``reporter``      the appliance-side register + heartbeat task
* ``demand``        playback sessions per (day, region, title), counted in memory, flushed
* ``steering_stats`` playback decisions by outcome (embedded ... origin, content/health miss)
* ``fills``         :class:`FillService`: demand flush, planning, agent manifests and reports
* ``fill_manifest``, ``fill_progress``, ``fill_state``  the fill's pure parts
  (forecast + placement -> manifests; the agent's manifest; progress, links, live regions)
* ``fill_api``, ``fill_schemas``  the fill routes and bodies
* ``traffic``       :class:`TrafficService`: appliance traffic reports and playback decisions
  per (UTC day, partner, site), in memory then ``traffic_daily`` / ``steering_daily``
* ``traffic_api``   ``POST /v1/appliances/{id}/traffic``, ``GET /v1/partners/{id}/traffic``
* ``metrics_api``   ``GET /metrics`` (Prometheus), read from the plane at scrape time

Decisions (steering, liveness, resume, view writes, sessions) are pure
functions in :mod:`localcast.core`; this package feeds them and serves them.
"""
