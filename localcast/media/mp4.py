"""Just enough ISO BMFF (MP4) reading for CMAF packaging (pure, bytes in).

What packaging needs from ffmpeg's output, read from the boxes rather than
re-probed per file: from an init segment, the track's timescale (``mdhd``),
default sample duration (``trex``) and codec configuration (``avcC`` /
``esds``, see :mod:`localcast.media.codecs`); from a media segment, its decode
start (``tfdt``) and exact duration (the sum of its sample durations from
``trun``, ``tfhd`` or ``trex`` defaults), in timescale ticks; and the merge
of a too-short last segment into the one before it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass


class Mp4Error(ValueError):
    """The bytes are not the fragmented MP4 this module expects."""


# Boxes whose payload is a sequence of child boxes (after a header of this many bytes).
_CONTAINERS = {
    b"moov": 0,
    b"trak": 0,
    b"mdia": 0,
    b"minf": 0,
    b"stbl": 0,
    b"mvex": 0,
    b"moof": 0,
    b"traf": 0,
    b"stsd": 8,  # version/flags + entry_count
    b"avc1": 78,  # VisualSampleEntry fields
    b"avc3": 78,
    b"mp4a": 28,  # AudioSampleEntry fields
}


@dataclass(frozen=True)
class Box:
    type: bytes
    payload: memoryview
    start: int  # offset of the box header in its container
    end: int  # offset just past the box


def iter_boxes(data: bytes | memoryview) -> Iterator[Box]:
    """The top-level boxes of ``data`` (64-bit and to-end sizes handled)."""
    view = memoryview(data)
    pos = 0
    while pos + 8 <= len(view):
        size, kind = struct.unpack_from(">I4s", view, pos)
        header = 8
        if size == 1:
            if pos + 16 > len(view):
                raise Mp4Error("truncated 64-bit box header")
            (size,) = struct.unpack_from(">Q", view, pos + 8)
            header = 16
        elif size == 0:
            size = len(view) - pos
        if size < header or pos + size > len(view):
            raise Mp4Error(f"box {kind!r} overruns its container")
        yield Box(bytes(kind), view[pos + header : pos + size], pos, pos + size)
        pos += size
    if pos != len(view):
        raise Mp4Error("trailing bytes after the last box")


def find_all(data: bytes | memoryview, path: str) -> list[memoryview]:
    """Payloads of every box at ``path`` ("moov/trak/mdia/mdhd"), depth first."""
    first, _, rest = path.partition("/")
    out: list[memoryview] = []
    for box in iter_boxes(data):
        if box.type != first.encode():
            continue
        if not rest:
            out.append(box.payload)
            continue
        skip = _CONTAINERS.get(box.type)
        if skip is None:
            raise Mp4Error(f"{first} is not a container box")
        out.extend(find_all(box.payload[skip:], rest))
    return out


def find_one(data: bytes | memoryview, path: str) -> memoryview:
    found = find_all(data, path)
    if not found:
        raise Mp4Error(f"no {path} box")
    return found[0]


@dataclass(frozen=True)
class TrackInit:
    """What an init segment says about its (single) track."""

    timescale: int
    default_sample_duration: int  # from trex; 0 when absent
    sample_entry: bytes  # e.g. b"avc1", b"mp4a"


def read_init(data: bytes) -> TrackInit:
    mdhd = find_one(data, "moov/trak/mdia/mdhd")
    if mdhd[0] == 1:
        (timescale,) = struct.unpack_from(">I", mdhd, 4 + 16)
    else:
        (timescale,) = struct.unpack_from(">I", mdhd, 4 + 8)
    if timescale <= 0:
        raise Mp4Error("mdhd timescale is zero")
    trex = find_all(data, "moov/mvex/trex")
    default_duration = struct.unpack_from(">I", trex[0], 12)[0] if trex else 0
    stsd = find_one(data, "moov/trak/mdia/minf/stbl/stsd")
    entries = list(iter_boxes(stsd[8:]))
    if not entries:
        raise Mp4Error("stsd has no sample entry")
    return TrackInit(timescale, default_duration, entries[0].type)


@dataclass(frozen=True)
class FragmentTiming:
    """Decode start and duration of a media segment, in track timescale ticks."""

    start: int
    duration: int
    samples: int


_TFHD_BASE_DATA_OFFSET = 0x01
_TFHD_SAMPLE_DESCRIPTION = 0x02
_TFHD_DEFAULT_DURATION = 0x08
_TRUN_DATA_OFFSET = 0x01
_TRUN_FIRST_FLAGS = 0x04
_TRUN_DURATION = 0x100


def _tfhd_default_duration(tfhd: memoryview) -> int | None:
    flags = int.from_bytes(tfhd[1:4], "big")
    pos = 8  # version/flags + track_ID
    if flags & _TFHD_BASE_DATA_OFFSET:
        pos += 8
    if flags & _TFHD_SAMPLE_DESCRIPTION:
        pos += 4
    if flags & _TFHD_DEFAULT_DURATION:
        return int(struct.unpack_from(">I", tfhd, pos)[0])
    return None


def _trun_duration(trun: memoryview, default: int) -> tuple[int, int]:
    """(total duration, sample count) of one trun box."""
    flags = int.from_bytes(trun[1:4], "big")
    (count,) = struct.unpack_from(">I", trun, 4)
    pos = 8
    if flags & _TRUN_DATA_OFFSET:
        pos += 4
    if flags & _TRUN_FIRST_FLAGS:
        pos += 4
    if not flags & _TRUN_DURATION:
        return default * count, count
    stride = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    if pos + stride * count > len(trun):
        raise Mp4Error("trun is shorter than its sample count")
    total = sum(struct.unpack_from(">I", trun, pos + i * stride)[0] for i in range(count))
    return total, count


def read_fragment_timing(data: bytes, init: TrackInit) -> FragmentTiming:
    """Timing of a media segment (one or more moof/mdat pairs, one track)."""
    start: int | None = None
    duration = samples = 0
    for traf in find_all(data, "moof/traf"):
        tfdt = find_one(traf, "tfdt")
        if tfdt[0] == 1:
            (base,) = struct.unpack_from(">Q", tfdt, 4)
        else:
            (base,) = struct.unpack_from(">I", tfdt, 4)
        if start is None:
            start = base
        default = _tfhd_default_duration(find_one(traf, "tfhd"))
        if default is None:
            default = init.default_sample_duration
        for trun in find_all(traf, "trun"):
            d, n = _trun_duration(trun, default)
            duration += d
            samples += n
    if start is None:
        raise Mp4Error("no moof/traf/tfdt: not a CMAF media segment")
    return FragmentTiming(start, duration, samples)


def merge_segments(first: bytes, second: bytes) -> bytes:
    """One media segment holding the fragments of two consecutive ones.

    Keeps ``first``'s ``styp``, then every ``moof``/``mdat`` (and other boxes)
    of both in order; ``sidx`` boxes are dropped (each indexed only its own
    file). Only valid for moof-relative data offsets, which is checked.
    """
    out = bytearray()
    for n, data in enumerate((first, second)):
        for traf in find_all(data, "moof/traf"):
            flags = int.from_bytes(find_one(traf, "tfhd")[1:4], "big")
            if flags & _TFHD_BASE_DATA_OFFSET:
                raise Mp4Error("tfhd has an absolute base_data_offset: cannot merge")
        for box in iter_boxes(data):
            if box.type == b"sidx" or (box.type == b"styp" and n > 0):
                continue
            out += data[box.start : box.end]
    return bytes(out)
