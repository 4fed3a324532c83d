"""RFC 6381 codec strings and stream geometry, read from CMAF init segments (pure).

The strings advertised in playlists (``CODECS``, ``@codecs``) come from the
actual encoded streams, never from what we asked the encoder for:

- H.264: ``avc1.PPCCLL`` = profile_idc, constraint flags, level_idc as the
  first three bytes after the version of the ``avcC`` record.
- AAC: ``mp4a.OO.A`` = the ``esds`` objectTypeIndication (hex, ``40`` for
  MPEG-4 audio) and the AudioSpecificConfig's audio object type (decimal,
  ``2`` for AAC-LC).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from localcast.media.mp4 import Mp4Error, find_one, iter_boxes

_STSD = "moov/trak/mdia/minf/stbl/stsd"
_VISUAL_ENTRY_FIELDS = 78
_AUDIO_ENTRY_FIELDS = 28


@dataclass(frozen=True)
class StreamInfo:
    """What an init segment says about its stream."""

    codec: str
    width: int = 0
    height: int = 0
    channels: int = 0
    sample_rate: int = 0


def avc_codec_string(sample_entry: str, avcc: bytes) -> str:
    """``avc1.64001f`` from the sample entry type and the avcC record."""
    if len(avcc) < 4 or avcc[0] != 1:
        raise Mp4Error("avcC record is not version 1")
    return f"{sample_entry}.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


def _descriptor(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, payload start, payload size) of the MPEG-4 descriptor at ``pos``."""
    if pos >= len(data):
        raise Mp4Error("esds descriptor overruns the box")
    tag = data[pos]
    pos += 1
    size = 0
    for _ in range(4):
        if pos >= len(data):
            raise Mp4Error("esds descriptor size overruns the box")
        byte = data[pos]
        pos += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    if pos + size > len(data):
        raise Mp4Error("esds descriptor overruns the box")
    return tag, pos, size


def mp4a_codec_string(esds: bytes) -> str:
    """``mp4a.40.2`` from an esds box payload (version/flags included)."""
    tag, pos, _ = _descriptor(esds, 4)
    if tag != 0x03:
        raise Mp4Error("esds has no ES_Descriptor")
    flags = esds[pos + 2]
    pos += 3  # ES_ID, flags
    if flags & 0x80:  # streamDependenceFlag
        pos += 2
    if flags & 0x40:  # URL_Flag
        pos += 1 + esds[pos]
    if flags & 0x20:  # OCRstreamFlag
        pos += 2
    tag, pos, size = _descriptor(esds, pos)
    if tag != 0x04:
        raise Mp4Error("esds has no DecoderConfigDescriptor")
    object_type = esds[pos]
    end = pos + size
    pos += 13  # objectTypeIndication, streamType, bufferSizeDB, maxBitrate, avgBitrate
    if object_type != 0x40 or pos >= end:
        return f"mp4a.{object_type:02x}"
    tag, pos, size = _descriptor(esds, pos)
    if tag != 0x05 or size < 1:
        raise Mp4Error("esds has no AudioSpecificConfig")
    aot = esds[pos] >> 3
    if aot == 31 and size >= 2:
        aot = 32 + (((esds[pos] & 0x07) << 3) | (esds[pos + 1] >> 5))
    return f"mp4a.40.{aot}"


def stream_info(init: bytes) -> StreamInfo:
    """Codec string and geometry (video) or channels/rate (audio) of an init segment."""
    stsd = find_one(init, _STSD)
    entries = list(iter_boxes(stsd[8:]))
    if not entries:
        raise Mp4Error("stsd has no sample entry")
    entry = entries[0]
    kind = entry.type.decode("ascii", "replace")
    body = bytes(entry.payload)
    if kind in ("avc1", "avc3"):
        width, height = struct.unpack_from(">HH", body, 24)
        avcc = find_one(body[_VISUAL_ENTRY_FIELDS:], "avcC")
        return StreamInfo(avc_codec_string(kind, bytes(avcc)), width=width, height=height)
    if kind == "mp4a":
        (channels,) = struct.unpack_from(">H", body, 16)
        (rate_fixed,) = struct.unpack_from(">I", body, 24)
        esds = find_one(body[_AUDIO_ENTRY_FIELDS:], "esds")
        return StreamInfo(
            mp4a_codec_string(bytes(esds)), channels=channels, sample_rate=rate_fixed >> 16
        )
    raise Mp4Error(f"unsupported sample entry {kind!r}")
