"""ISO BMFF reading and RFC 6381 codec strings, on hand-built boxes (no ffmpeg)."""

from __future__ import annotations

import struct

import pytest

from localcast.media.codecs import avc_codec_string, mp4a_codec_string, stream_info
from localcast.media.mp4 import (
    Mp4Error,
    find_all,
    iter_boxes,
    merge_segments,
    read_fragment_timing,
    read_init,
)


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(version: int, flags: int, body: bytes) -> bytes:
    return bytes([version]) + flags.to_bytes(3, "big") + body


def descriptor(tag: int, payload: bytes) -> bytes:
    return bytes([tag, 0x80, 0x80, 0x80, len(payload)]) + payload


def esds(audio_specific_config: bytes, object_type: int = 0x40) -> bytes:
    dec_specific = descriptor(0x05, audio_specific_config)
    dec_config = descriptor(0x04, bytes([object_type, 0x15]) + bytes(11) + dec_specific)
    es = descriptor(0x03, b"\x00\x01\x00" + dec_config + descriptor(0x06, b"\x02"))
    return full(0, 0, es)


def visual_entry(width: int, height: int, avcc: bytes) -> bytes:
    fields = bytearray(78)
    struct.pack_into(">HH", fields, 24, width, height)
    return box(b"avc1", bytes(fields) + box(b"avcC", avcc))


def audio_entry(channels: int, rate: int, esds_payload: bytes) -> bytes:
    fields = bytearray(28)
    struct.pack_into(">H", fields, 16, channels)
    struct.pack_into(">I", fields, 24, rate << 16)
    return box(b"mp4a", bytes(fields) + box(b"esds", esds_payload))


def init_segment(entry: bytes, timescale: int, trex_duration: int = 0) -> bytes:
    mdhd = box(b"mdhd", full(0, 0, struct.pack(">IIII", 0, 0, timescale, 0) + bytes(4)))
    stsd = box(b"stsd", full(0, 0, struct.pack(">I", 1)) + entry)
    stbl = box(b"stbl", stsd)
    mdia = box(b"mdia", mdhd + box(b"minf", stbl))
    trex = box(b"trex", full(0, 0, struct.pack(">IIIII", 1, 1, trex_duration, 0, 0)))
    moov = box(b"moov", box(b"trak", mdia) + box(b"mvex", trex))
    return box(b"ftyp", b"iso6") + moov


def media_segment(
    start: int,
    durations: list[int] | None,
    count: int = 0,
    tfhd_flags: int = 0x20000,
    default: int = 0,
) -> bytes:
    tfhd_body = struct.pack(">I", 1)
    if tfhd_flags & 0x08:
        tfhd_body += struct.pack(">I", default)
    tfhd = box(b"tfhd", full(0, tfhd_flags, tfhd_body))
    tfdt = box(b"tfdt", full(1, 0, struct.pack(">Q", start)))
    if durations is None:
        trun = box(b"trun", full(0, 0x001, struct.pack(">Ii", count, 0)))
    else:
        body = struct.pack(">Ii", len(durations), 0) + b"".join(
            struct.pack(">II", d, 100) for d in durations
        )
        trun = box(b"trun", full(0, 0x301, body))
    moof = box(b"moof", box(b"mfhd", full(0, 0, b"\0\0\0\1")) + box(b"traf", tfhd + tfdt + trun))
    return box(b"styp", b"msdh") + box(b"sidx", bytes(24)) + moof + box(b"mdat", b"x" * 10)


AVCC = bytes([1, 0x64, 0x00, 0x1F, 0xFF, 0xE1])


def test_avc_codec_string_from_avcc() -> None:
    assert avc_codec_string("avc1", AVCC) == "avc1.64001f"
    assert avc_codec_string("avc1", bytes([1, 0x42, 0xC0, 0x1E])) == "avc1.42c01e"
    with pytest.raises(Mp4Error):
        avc_codec_string("avc1", bytes([0, 1]))


def test_mp4a_codec_strings() -> None:
    assert mp4a_codec_string(esds(bytes([0x11, 0x90]))) == "mp4a.40.2"  # AAC-LC 48 kHz
    assert mp4a_codec_string(esds(bytes([0x2B, 0x92, 0x08]))) == "mp4a.40.5"  # HE-AAC
    assert mp4a_codec_string(esds(bytes([0xF8, 0x80]))) == "mp4a.40.36"  # escape: 32 + 4
    assert mp4a_codec_string(esds(b"", object_type=0x6B)) == "mp4a.6b"  # MP3


def test_stream_info_video_and_audio() -> None:
    v = stream_info(init_segment(visual_entry(1280, 720, AVCC), 12800))
    assert (v.codec, v.width, v.height) == ("avc1.64001f", 1280, 720)
    a = stream_info(init_segment(audio_entry(2, 48000, esds(bytes([0x11, 0x90]))), 48000))
    assert (a.codec, a.channels, a.sample_rate) == ("mp4a.40.2", 2, 48000)


def test_read_init_timescale_and_trex() -> None:
    init = read_init(init_segment(visual_entry(640, 360, AVCC), 12800, trex_duration=512))
    assert (init.timescale, init.default_sample_duration, init.sample_entry) == (
        12800,
        512,
        b"avc1",
    )


def test_fragment_timing_from_trun_durations() -> None:
    init = read_init(init_segment(visual_entry(640, 360, AVCC), 12800))
    t = read_fragment_timing(media_segment(51200, [512] * 100), init)
    assert (t.start, t.duration, t.samples) == (51200, 51200, 100)


def test_fragment_timing_from_tfhd_then_trex_defaults() -> None:
    init = read_init(init_segment(audio_entry(2, 48000, esds(b"\x11\x90")), 48000, 1024))
    from_tfhd = media_segment(0, None, count=10, tfhd_flags=0x20008, default=2048)
    assert read_fragment_timing(from_tfhd, init).duration == 20480
    assert read_fragment_timing(media_segment(0, None, count=10), init).duration == 10240


def test_merge_segments_keeps_fragments_and_drops_sidx() -> None:
    init = read_init(init_segment(visual_entry(640, 360, AVCC), 12800))
    a, b = media_segment(0, [512] * 100), media_segment(51200, [512] * 5)
    merged = merge_segments(a, b)
    assert [x.type for x in iter_boxes(merged)] == [b"styp", b"moof", b"mdat", b"moof", b"mdat"]
    t = read_fragment_timing(merged, init)
    assert (t.start, t.duration, t.samples) == (0, 53760, 105)
    with pytest.raises(Mp4Error, match="base_data_offset"):
        merge_segments(a, media_segment(0, [1], tfhd_flags=0x01 | 0x20000))


def test_malformed_boxes_are_rejected() -> None:
    with pytest.raises(Mp4Error):
        list(iter_boxes(struct.pack(">I4s", 100, b"moov")))
    with pytest.raises(Mp4Error, match="tfdt"):
        read_fragment_timing(
            box(b"styp", b"x"), read_init(init_segment(visual_entry(2, 2, AVCC), 1))
        )
    assert find_all(box(b"free"), "moov/trak") == []
