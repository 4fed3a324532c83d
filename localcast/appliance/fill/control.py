"""The fill agent's two calls to the control plane, with the appliance's credential."""

from __future__ import annotations

import httpx

from localcast.appliance.fill.schema import FillManifest, FillReport, parse_manifest


class ControlError(Exception):
    """The control plane could not be reached or refused the call."""


class ControlClient:
    def __init__(
        self, http: httpx.AsyncClient, control_url: str, appliance_id: str, credential: str
    ) -> None:
        self.http = http
        self.appliance_id = appliance_id
        self.base = f"{control_url.rstrip('/')}/v1/appliances/{appliance_id}/fill"
        self.headers = {"Authorization": f"Bearer {credential}"}

    async def manifest(self) -> FillManifest:
        """The current fill manifest; :class:`ControlError` or ``ManifestError``."""
        try:
            resp = await self.http.get(self.base, headers=self.headers)
        except httpx.HTTPError as exc:
            raise ControlError(f"control plane unreachable: {exc!r}") from exc
        if resp.status_code != 200:
            raise ControlError(f"fill manifest refused: HTTP {resp.status_code} {resp.text[:200]}")
        return parse_manifest(resp.content, self.appliance_id)

    async def report(self, report: FillReport) -> None:
        try:
            resp = await self.http.post(
                self.base + "/report",
                content=report.model_dump_json(),
                headers={**self.headers, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ControlError(f"control plane unreachable: {exc!r}") from exc
        if resp.status_code != 200:
            raise ControlError(f"fill report refused: HTTP {resp.status_code} {resp.text[:200]}")
