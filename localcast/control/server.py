"""Running the control plane under uvicorn (the ``localcast control serve`` command).

uvicorn's own proxy-header handling is switched off: the client address is
decided by :mod:`localcast.core.clientip` from ``[control] trusted_proxies``,
so a forwarded header from an untrusted peer is ignored.
"""

from __future__ import annotations

import logging

import uvicorn

from localcast.config import Config
from localcast.control.app import create_app
from localcast.control.service import ControlPlane
from localcast.control.settings import ControlSettings

log = logging.getLogger(__name__)


def serve(config: Config, settings: ControlSettings, log_level: str = "info") -> None:
    plane = ControlPlane.open(config, settings)
    app = create_app(plane)
    log.info(
        "control plane on http://%s:%d (database %s)",
        settings.listen,
        settings.port,
        plane.engine.url.render_as_string(hide_password=True),
    )
    try:
        uvicorn.run(
            app,
            host=settings.listen,
            port=settings.port,
            proxy_headers=False,
            log_level=log_level.lower(),
            log_config=None,  # keep localcast's logging set-up
            access_log=log_level.lower() == "debug",
        )
    finally:
        plane.close()
