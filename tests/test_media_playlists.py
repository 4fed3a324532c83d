"""Pure rendering: HLS media/multivariant playlists, the DASH MPD, title assembly."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET

import m3u8
import pytest
from media_fixtures import fake_manifest, fake_ref, fake_rendition

from localcast.media.assemble import (
    MeasuredSegment,
    MeasuredTrack,
    assemble_title,
    average_bandwidth,
    peak_bandwidth,
)
from localcast.media.dash import frame_rate_attr, render_mpd, timeline_entries
from localcast.media.hls import Pathway, render_media_playlist, render_multivariant
from localcast.media.manifest import TitleManifest

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
PATHWAYS = (
    Pathway("isp-a", "http://127.0.0.2:8080/tok1/fake/"),
    Pathway("ix-b", "http://127.0.0.3:8080/tok2/fake/"),
)


# --- HLS media playlist -------------------------------------------------------------


def test_media_playlist_is_vod_v7_with_map_and_exact_durations() -> None:
    r = fake_rendition("video-720p", durations=(4.0, 4.0, 1.52))
    text = render_media_playlist(r)
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n")
    for tag in (
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{r.init.name}"',
    ):
        assert tag in text
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    pl = m3u8.loads(text)
    assert [s.uri for s in pl.segments] == [s.file.name for s in r.segments]
    assert [s.duration for s in pl.segments] == [4.0, 4.0, 1.52]
    assert pl.segment_map[0].uri == r.init.name
    assert pl.is_endlist and pl.version == 7


def test_target_duration_covers_rounded_extinf() -> None:
    r = fake_rendition("audio-aac", kind="audio", durations=(4.010667, 4.6))
    assert "#EXT-X-TARGETDURATION:5" in render_media_playlist(r)


# --- HLS multivariant ---------------------------------------------------------------


def test_multivariant_without_pathways_is_relative() -> None:
    m = fake_manifest()
    text = render_multivariant(m)
    pl = m3u8.loads(text)
    assert [p.uri for p in pl.playlists] == [r.playlist.name for r in m.video]
    assert "CONTENT-STEERING" not in text and "PATHWAY-ID" not in text
    (audio,) = pl.media
    assert (
        audio.type == "AUDIO" and audio.group_id == "aud" and audio.uri == m.audio[0].playlist.name
    )
    v720 = pl.playlists[-1].stream_info
    a = m.audio[0]
    assert v720.bandwidth == m.video[-1].bandwidth + a.bandwidth
    assert v720.average_bandwidth == m.video[-1].average_bandwidth + a.average_bandwidth
    assert v720.codecs == "avc1.64001f,mp4a.40.2"
    assert v720.resolution == (1280, 720) and v720.frame_rate == 25.0 and v720.audio == "aud"


def test_multivariant_with_pathways_repeats_variants_per_pathway() -> None:
    m = fake_manifest()
    text = render_multivariant(m, PATHWAYS, steering_uri="http://127.0.0.1:9000/steer?s=1")
    assert (
        '#EXT-X-CONTENT-STEERING:SERVER-URI="http://127.0.0.1:9000/steer?s=1",PATHWAY-ID="isp-a"'
        in text
    )
    pl = m3u8.loads(text)
    assert len(pl.playlists) == 2 * len(m.video)
    for p in PATHWAYS:
        mine = [v for v in pl.playlists if v.stream_info.pathway_id == p.id]
        assert [v.uri for v in mine] == [p.base_uri + r.playlist.name for r in m.video]
        assert all(v.stream_info.audio == f"aud-{p.id}" for v in mine)
        (group,) = [x for x in pl.media if x.group_id == f"aud-{p.id}"]
        assert group.uri == p.base_uri + m.audio[0].playlist.name
    assert pl.content_steering.pathway_id == "isp-a"


def test_multivariant_start_offset() -> None:
    text = render_multivariant(fake_manifest(), start_offset_s=123.5)
    assert "#EXT-X-START:TIME-OFFSET=123.500000,PRECISE=YES" in text
    assert m3u8.loads(text).start.time_offset == 123.5


def test_max_height_drops_taller_variants_but_keeps_the_lowest() -> None:
    m = fake_manifest((240, 480, 720))
    heights = [
        p.stream_info.resolution[1]
        for p in m3u8.loads(render_multivariant(m, max_height=480)).playlists
    ]
    assert heights == [240, 480]
    only = m3u8.loads(render_multivariant(m, max_height=100)).playlists
    assert [p.stream_info.resolution[1] for p in only] == [240]


def test_codecs_filter_keeps_matching_renditions() -> None:
    base = fake_manifest((240, 720))
    hevc = fake_rendition("video-1080p-hevc", height=1080, codec="hvc1.1.6.L120.90")
    m = TitleManifest(**{**base.__dict__, "renditions": (*base.renditions, hevc)})
    pl = m3u8.loads(render_multivariant(m, codecs=["avc1", "mp4a"]))
    assert all(p.stream_info.codecs.startswith("avc1") for p in pl.playlists)
    assert len(pl.playlists) == 2
    with pytest.raises(ValueError, match="codecs"):
        render_multivariant(m, codecs=["av01"])


def test_pathways_need_a_steering_uri() -> None:
    with pytest.raises(ValueError, match="steering_uri"):
        render_multivariant(fake_manifest(), PATHWAYS)


def test_multivariant_without_audio_has_no_audio_group() -> None:
    text = render_multivariant(fake_manifest(audio=False))
    assert "EXT-X-MEDIA" not in text and "AUDIO=" not in text


# --- DASH ---------------------------------------------------------------------------


def parse_mpd(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


def test_mpd_lists_every_segment_with_segment_list() -> None:
    m = fake_manifest()
    root = parse_mpd(render_mpd(m))
    assert root.get("type") == "static"
    assert root.get("mediaPresentationDuration") == "PT10.000S"
    assert root.find("d:BaseURL", NS) is None and root.find("d:ContentSteering", NS) is None
    reps = root.findall(".//d:Representation", NS)
    assert [r.get("id") for r in reps] == [r.id for r in m.renditions]
    for rep, rendition in zip(reps, m.renditions, strict=True):
        seg_list = rep.find("d:SegmentList", NS)
        assert seg_list is not None
        init = seg_list.find("d:Initialization", NS)
        assert init is not None and init.get("sourceURL") == rendition.init.name
        urls = [u.get("media") for u in seg_list.findall("d:SegmentURL", NS)]
        assert urls == [s.file.name for s in rendition.segments]
        scale = int(seg_list.get("timescale", "1"))
        total = 0
        for s in seg_list.findall("d:SegmentTimeline/d:S", NS):
            total += int(s.get("d", "0")) * (1 + int(s.get("r", "0")))
        assert total / scale == pytest.approx(
            sum(s.duration_s for s in rendition.segments), abs=1e-4
        )
        assert rep.get("codecs") == rendition.codec


def test_mpd_with_pathways_has_base_urls_and_content_steering() -> None:
    uri = "http://127.0.0.1:9000/steer?session=a&b=<c>"
    text = render_mpd(fake_manifest(), PATHWAYS, steering_uri=uri, start_offset_s=30.0)
    root = parse_mpd(text)
    bases = root.findall("d:BaseURL", NS)
    assert [(b.get("serviceLocation"), b.text) for b in bases] == [
        (p.id, p.base_uri) for p in PATHWAYS
    ]
    steering = root.find("d:ContentSteering", NS)
    assert steering is not None and steering.text == uri
    assert steering.get("defaultServiceLocation") == "isp-a"
    assert steering.get("queryBeforeStart") == "true"
    assert "&amp;" in text  # escaped by xml.etree
    prop = root.find("d:SupplementalProperty", NS)
    assert prop is not None and prop.get("value") == "30.000"


def test_mpd_max_height() -> None:
    root = parse_mpd(render_mpd(fake_manifest((240, 480, 720)), max_height=480))
    heights = [r.get("height") for r in root.findall(".//d:Representation", NS) if r.get("height")]
    assert heights == ["240", "480"]


def test_timeline_entries_compress_repeats() -> None:
    r = fake_rendition("v", durations=(4.0, 4.0, 4.0, 1.0))
    assert timeline_entries(r, 90_000) == [(0, 360_000, 2), (1_080_000, 90_000, 0)]
    audio = fake_rendition("a", kind="audio", durations=(4.010666666666666, 3.989333333333333))
    assert timeline_entries(audio, 48_000) == [(0, 192_512, 0), (192_512, 191_488, 0)]


def test_frame_rate_attr() -> None:
    assert frame_rate_attr(25.0) == "25"
    assert frame_rate_attr(30000 / 1001) == "30000/1001"


# --- assembly -----------------------------------------------------------------------


def measured(sizes_durations: list[tuple[int, float]]) -> tuple[MeasuredSegment, ...]:
    out, start = [], 0.0
    for i, (size, d) in enumerate(sizes_durations):
        out.append(MeasuredSegment(fake_ref(f"s{i}", "m4s", size), start, d))
        start += d
    return tuple(out)


def test_peak_bandwidth_uses_runs_between_half_and_one_and_a_half_targets() -> None:
    segs = measured([(500_000, 4.0), (1_000_000, 4.0), (100, 0.02)])
    assert peak_bandwidth(segs, 4.0) == 2_000_000  # the 0.02 s sliver alone does not count
    assert average_bandwidth(segs) == pytest.approx(1_500_100 * 8 / 8.02, abs=1)
    assert peak_bandwidth(measured([(1000, 0.5)]), 4.0) == 16_000  # nothing qualifies


def test_assemble_title_content_addresses_rendered_files() -> None:
    video = MeasuredTrack(
        "video-240p",
        "video",
        "avc1.640015",
        fake_ref("i", "mp4"),
        measured([(100_000, 4.0), (90_000, 2.0)]),
        width=426,
        height=240,
        frame_rate=25.0,
    )
    audio = MeasuredTrack(
        "audio-aac",
        "audio",
        "mp4a.40.2",
        fake_ref("a", "mp4"),
        measured([(60_000, 4.010667), (30_000, 1.989333)]),
        channels=2,
        sample_rate=48000,
    )
    manifest, files = assemble_title("t1", "T", 4.0, "f" * 64, [audio, video], {"k": 1})
    assert [r.id for r in manifest.renditions] == ["video-240p", "audio-aac"]
    assert manifest.duration_s == 6.0
    for name, data in files.items():
        assert name.split(".")[0] == hashlib.sha256(data).hexdigest()
    names = set(files)
    assert {manifest.multivariant.name, manifest.mpd.name} <= names
    assert {r.playlist.name for r in manifest.renditions} <= names
    assert files[manifest.multivariant.name].decode() == render_multivariant(manifest)
    assert TitleManifest.from_json(manifest.to_json()) == manifest
    assert TitleManifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest
    assert manifest.renditions[0].segments[1].start_s == 4.0
