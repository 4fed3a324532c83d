"""What can go wrong in a control plane request, typed by the answer it deserves.

The service raises these with a reason meant for the caller; the FastAPI
assembly maps each class to its HTTP status and a ``{"detail": reason}``
body. ``field`` (when set) names the offending request field.
"""

from __future__ import annotations


class ControlError(Exception):
    status = 500

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class Invalid(ControlError):
    status = 422


class Unauthorized(ControlError):
    status = 401


class NotFound(ControlError):
    status = 404


class Conflict(ControlError):
    status = 409


class Gone(ControlError):
    status = 410


class Unavailable(ControlError):
    status = 503
