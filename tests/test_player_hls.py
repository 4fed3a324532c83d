"""Player-side HLS and steering parsing (localcast.player.hls, .steering, .api): pure."""

from __future__ import annotations

import pytest

from localcast.player.api import parse_grant
from localcast.player.errors import PlayerError
from localcast.player.hls import (
    PlaylistError,
    build_presentation,
    parse_media_playlist,
    parse_multivariant,
)
from localcast.player.steering import (
    SteeringError,
    parse_steering,
    pathway_order,
    steering_request_url,
)

TOKEN = "lc1~k1~1767225600~1~-~sig"
A1 = "http://127.0.0.2:9001"
A2 = "http://127.0.0.3:9001"


def _multivariant() -> str:
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        '#EXT-X-CONTENT-STEERING:SERVER-URI="/v1/steering/s1",PATHWAY-ID="p1"',
        "#EXT-X-START:TIME-OFFSET=12.5",
    ]
    for p, base in (("p1", A1), ("p2", A2)):
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud-{p}",NAME="English",LANGUAGE="en",'
            f'DEFAULT=YES,AUTOSELECT=YES,URI="{base}/{TOKEN}/t1/{"a" * 64}.m3u8",PATHWAY-ID="{p}"'
        )
        for rate, (w, h), codec, sha in (
            (400_000, (640, 360), "avc1.64001e", "1"),
            (1_200_000, (1280, 720), "avc1.64001f", "2"),
            (1_100_000, (1280, 720), "hvc1.1.6.L93.B0", "3"),
            (4_000_000, (1920, 1080), "avc1.640028", "4"),
            (9_000_000, (3840, 2160), "avc1.640033", "5"),
        ):
            lines.append(
                f"#EXT-X-STREAM-INF:BANDWIDTH={rate},AVERAGE-BANDWIDTH={rate * 9 // 10},"
                f'CODECS="{codec},mp4a.40.2",RESOLUTION={w}x{h},FRAME-RATE=25.000,'
                f'AUDIO="aud-{p}",PATHWAY-ID="{p}"'
            )
            lines.append(f"{base}/{TOKEN}/t1/{sha * 64}.m3u8")
    return "\n".join(lines) + "\n"


MV_URL = "http://127.0.0.1:8000/v1/sessions/s1/multivariant.m3u8"


def test_multivariant_keeps_pathways_steering_and_start() -> None:
    mv = parse_multivariant(_multivariant(), MV_URL)
    assert mv.pathway_ids == ("p1", "p2")
    assert mv.steering_uri == "http://127.0.0.1:8000/v1/steering/s1"
    assert mv.default_pathway == "p1"
    assert mv.start_offset_s == 12.5
    assert {a.pathway_id for a in mv.audio} == {"p1", "p2"}
    assert len(mv.variants) == 10


def test_presentation_filters_by_device_and_maps_every_pathway() -> None:
    mv = parse_multivariant(_multivariant(), MV_URL)
    pres = build_presentation(mv, ("avc1", "mp4a"), max_height=1080)
    assert [r.bandwidth for r in pres.rungs] == [400_000, 1_200_000, 4_000_000]
    assert pres.pathways == ("p1", "p2")
    top = pres.rungs[-1]
    assert top.uris["p1"].startswith(A1) and top.uris["p2"].startswith(A2)
    assert top.audio_uris["p2"] == f"{A2}/{TOKEN}/t1/{'a' * 64}.m3u8"
    assert pres.has_audio


def test_presentation_falls_back_to_the_smallest_when_nothing_fits() -> None:
    mv = parse_multivariant(_multivariant(), MV_URL)
    pres = build_presentation(mv, ("avc1", "mp4a"), max_height=144)
    assert [r.height for r in pres.rungs] == [360]


def test_presentation_without_a_decodable_codec_fails() -> None:
    mv = parse_multivariant(_multivariant(), MV_URL)
    with pytest.raises(PlaylistError):
        build_presentation(mv, ("vp09",), max_height=None)


def test_a_pathway_missing_a_rendition_is_dropped() -> None:
    text = _multivariant().replace(f"{A2}/{TOKEN}/t1/{'2' * 64}.m3u8", "")
    text = text.replace('RESOLUTION=1280x720,FRAME-RATE=25.000,AUDIO="aud-p2"', "X-GONE=1")
    mv = parse_multivariant(text, MV_URL)
    pres = build_presentation(mv, ("avc1", "mp4a"), max_height=1080)
    assert pres.pathways == ("p1",)


def test_playlist_without_steering_uses_the_default_pathway() -> None:
    text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nlow.m3u8\n"
    mv = parse_multivariant(text, MV_URL)
    assert mv.pathway_ids == (".",)
    assert mv.steering_uri is None and mv.start_offset_s is None
    assert mv.variants[0].uri == "http://127.0.0.1:8000/v1/sessions/s1/low.m3u8"


def test_media_playlist_resolves_relative_uris_under_the_token() -> None:
    url = f"{A1}/{TOKEN}/t1/{'1' * 64}.m3u8"
    text = (
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        f'#EXT-X-MAP:URI="{"b" * 64}.mp4"\n'
        f"#EXTINF:4.000,\n{'c' * 64}.m4s\n#EXTINF:4.000,\n{'d' * 64}.m4s\n"
        f"#EXTINF:1.500,\n{'e' * 64}.m4s\n#EXT-X-ENDLIST\n"
    )
    pl = parse_media_playlist(text, url)
    assert pl.init_uri == f"{A1}/{TOKEN}/t1/{'b' * 64}.mp4"
    assert [s.start_s for s in pl.segments] == [0.0, 4.0, 8.0]
    assert pl.duration_s == 9.5
    assert pl.segments[1].uri == f"{A1}/{TOKEN}/t1/{'d' * 64}.m4s"
    assert pl.index_at(4.0) == 1
    assert pl.index_at(3.999) == 0
    assert pl.index_at(100) == 2


def test_media_playlist_rejects_multivariant() -> None:
    with pytest.raises(PlaylistError):
        parse_media_playlist(_multivariant(), MV_URL)


def test_steering_manifest() -> None:
    url = "http://127.0.0.1:8000/v1/steering/s1?_HLS_pathway=p1"
    m = parse_steering(
        {"VERSION": 1, "TTL": 10, "RELOAD-URI": "/v1/steering/s1?v=2", "PATHWAY-PRIORITY": ["p2"]},
        url,
    )
    assert m.ttl_s == 10.0
    assert m.reload_uri == "http://127.0.0.1:8000/v1/steering/s1?v=2"
    assert m.pathway_priority == ("p2",)
    no_reload = parse_steering({"VERSION": 1, "TTL": 5, "PATHWAY-PRIORITY": []}, url)
    assert no_reload.reload_uri == url


@pytest.mark.parametrize(
    "bad",
    [[], {"VERSION": 2, "TTL": 1}, {"VERSION": 1, "TTL": 0}, {"VERSION": 1, "PATHWAY-PRIORITY": 3}],
)
def test_steering_manifest_rejects(bad: object) -> None:
    with pytest.raises(SteeringError):
        parse_steering(bad, "http://127.0.0.1/s")


def test_steering_request_url_sets_hls_params() -> None:
    url = steering_request_url("http://h/s?x=1&_HLS_pathway=old", "p2", 2_500_000.7)
    assert url == "http://h/s?x=1&_HLS_pathway=p2&_HLS_throughput=2500000"
    assert steering_request_url("http://h/s", "p1", None) == "http://h/s?_HLS_pathway=p1"


def test_pathway_order_follows_priority_then_rank_and_benches_failures() -> None:
    available = ("p1", "p2", "p3")
    assert pathway_order(available, ("p3", "p1", "zz"), {}, 0.0) == ("p3", "p1", "p2")
    assert pathway_order(available, ("p3",), {"p3": 50.0}, 10.0) == ("p1", "p2", "p3")
    assert pathway_order(available, ("p3",), {"p3": 50.0}, 60.0) == ("p3", "p1", "p2")
    benched = pathway_order(available, (), {"p1": 30.0, "p2": 20.0, "p3": 40.0}, 0.0)
    assert benched == ("p2", "p1", "p3")


def test_parse_grant() -> None:
    grant = parse_grant(
        {
            "session_id": "s1",
            "multivariant_url": "/v1/sessions/s1/multivariant.m3u8",
            "mpd_url": None,
            "pathways": [
                {"id": "p2", "appliance_id": "a2", "site_id": "x", "kind": "ix", "rank": 2},
                {"id": "p1", "appliance_id": "a1", "site_id": "y", "kind": "embedded", "rank": 1},
            ],
            "resume_offset_s": 42,
            "expires_at": 1767225600,
        },
        "http://127.0.0.1:8000/",
    )
    assert grant.multivariant_url == MV_URL
    assert [p.id for p in grant.pathways] == ["p1", "p2"]
    assert grant.resume_offset_s == 42.0
    with pytest.raises(PlayerError):
        parse_grant({"session_id": "s1"}, "http://127.0.0.1:8000/")
