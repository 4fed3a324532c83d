"""What can go wrong for the player, by whose fault."""

from __future__ import annotations


class PlayerError(Exception):
    """Playback could not start or continue; the message is for the viewer."""


class TitleNotFound(PlayerError):
    """The control plane does not know the title (HTTP 404)."""


class PlaybackFailed(PlayerError):
    """Every pathway failed for the same request, repeatedly."""


class FetchError(Exception):
    """One HTTP request failed: status >= 400, refused, reset or timed out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
