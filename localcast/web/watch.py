"""The watch page: `/watch/{title_id}` plays a title in the browser with hls.js.

The page asks the control plane for a playback session (same origin), hands
the per-session multivariant playlist to hls.js, which follows HLS Content
Steering on its own (pathway failover without a new playback request), starts
at the resume offset, and reports the view offset every 10 s and when playback
pauses, ends or the page is hidden. Segments come from the appliances, on
other origins (they answer CORS for the control plane's origin).

:func:`render_watch_page` is pure; :func:`watch_router` serves it and the two
scripts.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from localcast.media.manifest import TITLE_ID_RE

STATIC_DIR = Path(__file__).parent / "static"
PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # as the views API accepts
DEFAULT_PROFILE = "web"
_NO_STORE = {"Cache-Control": "no-store"}
# Characters that could end a <script> element or start markup inside JSON embedded in it.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(value: object) -> str:
    """``value`` as JSON that is safe as the text of a ``<script type=application/json>``."""
    return json.dumps(value).translate(_SCRIPT_SAFE)


def render_watch_page(template: str, title_id: str, profile_id: str) -> str:
    """The page for ``title_id`` watched by ``profile_id`` (both already validated)."""
    params = script_json({"title_id": title_id, "profile_id": profile_id})
    page = template.replace("{{TITLE}}", html.escape(title_id))
    page = page.replace("{{PROFILE}}", html.escape(profile_id))
    return page.replace("{{PARAMS}}", params)


def watch_router(hlsjs: Path | None) -> APIRouter:
    """The watch page and its scripts; ``hlsjs`` is hls.min.js (None: not installed, 503)."""
    router = APIRouter(tags=["web"])
    template = (STATIC_DIR / "watch.html").read_text()

    @router.get("/static/hls.min.js", include_in_schema=False)
    async def hls_js() -> FileResponse:
        if hlsjs is None:
            raise HTTPException(503, "hls.js is not installed: run `make deps`")
        return FileResponse(hlsjs, media_type="text/javascript")

    @router.get("/static/watch.js", include_in_schema=False)
    async def watch_js() -> FileResponse:
        return FileResponse(STATIC_DIR / "watch.js", media_type="text/javascript")

    @router.get("/watch/{title_id}", response_class=HTMLResponse)
    async def watch(title_id: str, profile: str = DEFAULT_PROFILE) -> HTMLResponse:
        """Play ``title_id`` in the browser as ``profile`` (resume point and views are its)."""
        if not TITLE_ID_RE.match(title_id):
            raise HTTPException(404, f"no such title {title_id!r}")
        if not PROFILE_RE.match(profile):
            raise HTTPException(422, "profile: letters, digits, '_', '.', '-' (max 64)")
        return HTMLResponse(render_watch_page(template, title_id, profile), headers=_NO_STORE)

    return router
