"""The Localcast player: plays a title the way a device would (see :mod:`.player`).

``await play(title_id, profile_id, ...)`` returns a :class:`QoeReport`.
"""

from localcast.player.errors import PlaybackFailed, PlayerError, TitleNotFound
from localcast.player.player import DEFAULT_CONTROL_URL, PlayerEvent, PlayerTuning, play
from localcast.player.qoe import QoeReport, SegmentRecord

__all__ = [
    "DEFAULT_CONTROL_URL",
    "PlaybackFailed",
    "PlayerError",
    "PlayerEvent",
    "PlayerTuning",
    "QoeReport",
    "SegmentRecord",
    "TitleNotFound",
    "play",
]
