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

Decisions (steering, liveness, resume, view writes, sessions) are pure
functions in :mod:`localcast.core`; this package feeds them and serves them.
"""
