"""Pure media decisions: probe parsing, ladder choice, the ffmpeg command (no ffmpeg run)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcast.media.ffmpeg_cmd import TranscodeJob, segment_frames, transcode_command
from localcast.media.ladder import LADDER, choose_ladder, ladder_fingerprint, output_frame_rate
from localcast.media.probe import ProbeError, SourceInfo, parse_probe
from localcast.media.transcode import parse_progress


def src(w: int, h: int, fps: Fraction = Fraction(25), audio: bool = True) -> SourceInfo:
    return SourceInfo(
        duration_s=20.0,
        width=w,
        height=h,
        frame_rate=fps,
        video_codec="h264",
        has_audio=audio,
        audio_channels=2 if audio else 0,
    )


# --- ladder -------------------------------------------------------------------------


def test_1080p_source_gets_five_rungs_240_to_1080() -> None:
    rungs = choose_ladder(src(1920, 1080))
    assert [(r.width, r.height) for r in rungs] == [
        (426, 240),
        (640, 360),
        (854, 480),
        (1280, 720),
        (1920, 1080),
    ]
    assert [r.video_kbps for r in rungs] == [row.video_kbps for row in LADDER]


def test_720p_source_never_upscaled() -> None:
    assert [r.height for r in choose_ladder(src(1280, 720))] == [240, 360, 480, 720]


def test_4k_source_tops_out_at_1080p() -> None:
    assert choose_ladder(src(3840, 2160))[-1].height == 1080


def test_max_height_caps_the_ladder() -> None:
    assert [r.height for r in choose_ladder(src(1920, 1080), max_height=480)] == [240, 360, 480]


def test_source_below_240p_gets_one_rung_at_source_size() -> None:
    (rung,) = choose_ladder(src(320, 180))
    assert (rung.width, rung.height) == (320, 180)
    assert rung.video_kbps < LADDER[0].video_kbps


def test_odd_tiny_source_rounds_down_to_even() -> None:
    (rung,) = choose_ladder(src(175, 99))
    assert (rung.width, rung.height) == (174, 98)


def test_max_height_below_lowest_rung_gives_one_scaled_rung() -> None:
    (rung,) = choose_ladder(src(1920, 1080), max_height=100)
    assert rung.height == 100 and rung.width == 178


def test_portrait_rungs_are_named_by_short_side() -> None:
    rungs = choose_ladder(src(1080, 1920))
    assert [(r.width, r.height) for r in rungs][-1] == (1080, 1920)
    assert rungs[0].id == "video-240p" and rungs[0].width == 240


def test_high_frame_rate_gets_more_bits_and_is_capped_at_60() -> None:
    normal = choose_ladder(src(1280, 720, Fraction(30)))
    fast = choose_ladder(src(1280, 720, Fraction(60)))
    assert fast[0].video_kbps > normal[0].video_kbps
    assert output_frame_rate(src(1280, 720, Fraction(120))) == 60
    assert output_frame_rate(src(1280, 720, Fraction(30000, 1001))) == Fraction(30000, 1001)


@given(st.integers(16, 4096), st.integers(16, 4096), st.none() | st.integers(2, 2160))
def test_ladder_is_never_empty_never_upscaled_and_even(w: int, h: int, cap: int | None) -> None:
    rungs = choose_ladder(src(w, h), max_height=cap)
    assert 1 <= len(rungs) <= len(LADDER)
    for r in rungs:
        assert r.width <= w and r.height <= h
        assert cap is None or r.height <= cap
        assert r.width % 2 == 0 and r.height % 2 == 0
        assert r.maxrate_kbps >= r.video_kbps
    assert [r.height for r in rungs] == sorted(r.height for r in rungs)


def test_ladder_fingerprint_is_stable() -> None:
    assert ladder_fingerprint() == ladder_fingerprint()
    assert len(ladder_fingerprint()) == 16


# --- probe parsing ------------------------------------------------------------------


def probe_json(**video: object) -> dict[str, object]:
    stream = {
        "codec_type": "video",
        "codec_name": "h264",
        "width": 1280,
        "height": 720,
        "avg_frame_rate": "25/1",
        "r_frame_rate": "25/1",
        "duration": "20.0",
    }
    stream.update(video)
    audio = {"codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "48000"}
    return {"streams": [stream, audio], "format": {"duration": "20.02", "format_name": "mp4"}}


def test_parse_probe_reads_geometry_rate_and_audio() -> None:
    info = parse_probe(probe_json())
    assert (info.width, info.height, info.frame_rate) == (1280, 720, 25)
    assert info.duration_s == 20.0  # the video stream's, not the container's
    assert info.has_audio and info.audio_channels == 2 and info.audio_sample_rate == 48000


def test_parse_probe_applies_sample_aspect_and_rotation() -> None:
    assert parse_probe(probe_json(width=720, height=576, sample_aspect_ratio="16:11")).width == 1047
    rotated = parse_probe(probe_json(side_data_list=[{"rotation": -90}]))
    assert (rotated.width, rotated.height) == (720, 1280)


def test_parse_probe_ntsc_rate() -> None:
    assert parse_probe(probe_json(avg_frame_rate="30000/1001")).frame_rate == Fraction(30000, 1001)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"streams": [{"codec_type": "audio"}], "format": {"duration": "3"}}, "no video stream"),
        (
            {
                "streams": [
                    {
                        "codec_type": "video",
                        "width": 600,
                        "height": 600,
                        "avg_frame_rate": "90000/1",
                        "disposition": {"attached_pic": 1},
                    }
                ],
                "format": {"duration": "3"},
            },
            "no video stream",
        ),
        (probe_json(duration="N/A") | {"format": {}}, "duration"),
        (probe_json(width=0), "frame size"),
        (probe_json(avg_frame_rate="0/0", r_frame_rate="0/0"), "frame rate"),
        ("nonsense", "no description"),
    ],
)
def test_parse_probe_rejects_non_video(data: object, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        parse_probe(data)


# --- ffmpeg command -----------------------------------------------------------------


def job(info: SourceInfo, seg: float = 4.0, preset: str = "veryfast") -> TranscodeJob:
    return TranscodeJob(Path("/in/src.mp4"), info, choose_ladder(info), seg, preset, Path("/out"))


def arg_after(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_command_aligns_keyframes_on_segment_boundaries() -> None:
    cmd = transcode_command(job(src(1280, 720)))
    assert arg_after(cmd, "-g") == arg_after(cmd, "-keyint_min") == "100"
    assert arg_after(cmd, "-sc_threshold") == "0"
    assert arg_after(cmd, "-force_key_frames") == "expr:gte(t,n_forced*4)"
    assert arg_after(cmd, "-hls_time") == "4"
    assert arg_after(cmd, "-hls_segment_type") == "fmp4"
    assert arg_after(cmd, "-preset") == "veryfast"
    assert arg_after(cmd, "-var_stream_map") == "v:0 v:1 v:2 v:3 a:0"


def test_command_has_one_bitrate_per_rung_from_the_ladder() -> None:
    info = src(1920, 1080)
    cmd = transcode_command(job(info))
    for i, rung in enumerate(choose_ladder(info)):
        assert arg_after(cmd, f"-b:v:{i}") == f"{rung.video_kbps}k"
        assert arg_after(cmd, f"-maxrate:v:{i}") == f"{rung.maxrate_kbps}k"
    graph = arg_after(cmd, "-filter_complex")
    assert "split=5" in graph and "scale=1920:1080" in graph and "fps=25" in graph


def test_command_generates_silence_for_a_source_without_audio() -> None:
    cmd = transcode_command(job(src(640, 360, audio=False)))
    assert any(a.startswith("anullsrc=") for a in cmd)
    assert "1:a:0" in cmd and "0:a:0" not in cmd
    assert "anullsrc" not in " ".join(transcode_command(job(src(640, 360))))


def test_command_rejects_unknown_preset() -> None:
    with pytest.raises(ValueError, match="preset"):
        transcode_command(job(src(640, 360), preset="ludicrous"))


def test_segment_frames_for_common_rates() -> None:
    assert segment_frames(4.0, Fraction(25)) == 100
    assert segment_frames(2.0, Fraction(30000, 1001)) == 60
    assert segment_frames(6.0, Fraction(24)) == 144


def test_parse_progress_reads_out_time_us() -> None:
    assert parse_progress("out_time_us=4000000\n") == 4.0
    assert parse_progress("out_time_us=N/A") is None
    assert parse_progress("frame=12") is None
