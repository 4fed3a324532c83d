"""NOTIFICATION codes and the typed errors that carry them.

Every way a peer can break the protocol is a :class:`RemoteProtocolError`
subclass that knows the NOTIFICATION to answer with (RFC 4271 §4.5 and §6,
RFC 4486 for Cease subcodes, RFC 6608 for FSM subcodes): the session sends
``err.notification()`` and closes. :class:`LocalProtocolError` is our own
misuse (say, encoding a message over the size limit) and is never sent.

Nothing here does I/O or parses bytes.
"""

from __future__ import annotations

import enum

from localcast.bgp.messages import Notification


class ErrorCode(enum.IntEnum):
    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7


class HeaderSubcode(enum.IntEnum):
    CONNECTION_NOT_SYNCHRONIZED = 1  # bad marker
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(enum.IntEnum):
    UNSPECIFIC = 0
    UNSUPPORTED_VERSION = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7


class UpdateSubcode(enum.IntEnum):
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN = 6
    INVALID_NEXT_HOP = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class FsmSubcode(enum.IntEnum):
    UNSPECIFIED = 0
    UNEXPECTED_IN_OPEN_SENT = 1
    UNEXPECTED_IN_OPEN_CONFIRM = 2
    UNEXPECTED_IN_ESTABLISHED = 3


class CeaseSubcode(enum.IntEnum):
    MAX_PREFIXES = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8


class LocalProtocolError(ValueError):
    """We asked the codec for something the protocol cannot express."""


class RemoteProtocolError(Exception):
    """The peer broke the protocol; answer with :meth:`notification`."""

    code: int = 0

    def __init__(self, subcode: int, reason: str, data: bytes = b"") -> None:
        super().__init__(reason)
        self.subcode = int(subcode)
        self.reason = reason
        self.data = bytes(data)

    def notification(self) -> Notification:
        return Notification(self.code, self.subcode, self.data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}/{self.subcode}: {self.reason})"


class MessageHeaderError(RemoteProtocolError):
    code = ErrorCode.MESSAGE_HEADER


class OpenMessageError(RemoteProtocolError):
    code = ErrorCode.OPEN_MESSAGE


class UpdateMessageError(RemoteProtocolError):
    code = ErrorCode.UPDATE_MESSAGE


class FsmError(RemoteProtocolError):
    code = ErrorCode.FSM


class HoldTimerExpired(RemoteProtocolError):
    code = ErrorCode.HOLD_TIMER_EXPIRED


class CeaseError(RemoteProtocolError):
    code = ErrorCode.CEASE


def describe(code: int, subcode: int) -> str:
    """``"UPDATE_MESSAGE/MALFORMED_AS_PATH"`` for logs and status pages."""
    subcodes: dict[int, type[enum.IntEnum]] = {
        ErrorCode.MESSAGE_HEADER: HeaderSubcode,
        ErrorCode.OPEN_MESSAGE: OpenSubcode,
        ErrorCode.UPDATE_MESSAGE: UpdateSubcode,
        ErrorCode.FSM: FsmSubcode,
        ErrorCode.CEASE: CeaseSubcode,
    }
    try:
        name = ErrorCode(code).name
    except ValueError:
        return f"{code}/{subcode}"
    table = subcodes.get(code)
    if table is not None:
        try:
            return f"{name}/{table(subcode).name}"
        except ValueError:
            pass
    return f"{name}/{subcode}"
