"""DASH MPD rendering: title manifest -> static MPD over the same CMAF files (pure).

The MPD references exactly the files the HLS playlists do: every
Representation has a ``SegmentList`` with an explicit ``Initialization
sourceURL`` and one ``SegmentURL media="<sha256>.m4s"`` per segment (names are
content-addressed, so no ``SegmentTemplate`` can describe them), timed by a
``SegmentTimeline`` so uneven (audio) segment durations stay exact.

With pathways the MPD gets one ``BaseURL serviceLocation=...`` per pathway and
a DASH-IF ``ContentSteering`` element; without, URLs stay relative. DASH has
no in-manifest equivalent of HLS ``EXT-X-START``: a start offset is written as
an MPD-level ``SupplementalProperty`` (scheme :data:`START_OFFSET_SCHEME`);
standard players take it from the MPD anchor ``#t=<seconds>`` on the MPD URL.
Built with ``xml.etree`` so the output is well-formed and escaped. No I/O.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from fractions import Fraction

from localcast.media.hls import Pathway, select_renditions
from localcast.media.manifest import Rendition, TitleManifest

MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
MPD_PROFILE = "urn:mpeg:dash:profile:isoff-main:2011"
AUDIO_CHANNELS_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
START_OFFSET_SCHEME = "urn:localcast:start-offset:2024"
VIDEO_TIMESCALE = 90_000


def iso_duration(seconds: float) -> str:
    """xs:duration in seconds, e.g. ``PT20.000S``."""
    return f"PT{seconds:.3f}S"


def frame_rate_attr(frame_rate: float) -> str:
    """DASH FrameRateType (integer or ratio): 25.0 -> "25", 29.97.. -> "30000/1001"."""
    frac = Fraction(frame_rate).limit_denominator(1001)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


def timescale_for(rendition: Rendition) -> int:
    """Ticks per second for a rendition's SegmentTimeline (exact for its durations)."""
    if rendition.kind == "audio" and rendition.sample_rate:
        return rendition.sample_rate
    return VIDEO_TIMESCALE


def timeline_entries(rendition: Rendition, timescale: int) -> list[tuple[int, int, int]]:
    """Run-length ``(t, d, r)`` entries of the SegmentTimeline (r = extra repeats)."""
    entries: list[tuple[int, int, int]] = []
    for seg in rendition.segments:
        t = round(seg.start_s * timescale)
        d = round((seg.start_s + seg.duration_s) * timescale) - t
        if entries:
            t0, d0, r0 = entries[-1]
            if d == d0 and t == t0 + d0 * (r0 + 1):
                entries[-1] = (t0, d0, r0 + 1)
                continue
        entries.append((t, d, 0))
    return entries


def _segment_list(parent: ET.Element, rendition: Rendition) -> None:
    timescale = timescale_for(rendition)
    seg_list = ET.SubElement(parent, "SegmentList", timescale=str(timescale))
    ET.SubElement(seg_list, "Initialization", sourceURL=rendition.init.name)
    timeline = ET.SubElement(seg_list, "SegmentTimeline")
    for t, d, r in timeline_entries(rendition, timescale):
        attrs = {"t": str(t), "d": str(d)}
        if r:
            attrs["r"] = str(r)
        ET.SubElement(timeline, "S", attrs)
    for seg in rendition.segments:
        ET.SubElement(seg_list, "SegmentURL", media=seg.file.name)


def _video_set(period: ET.Element, video: Sequence[Rendition]) -> None:
    aset = ET.SubElement(
        period,
        "AdaptationSet",
        id="0",
        contentType="video",
        mimeType="video/mp4",
        segmentAlignment="true",
        startWithSAP="1",
        maxWidth=str(max(v.width for v in video)),
        maxHeight=str(max(v.height for v in video)),
    )
    for v in video:
        attrs = {
            "id": v.id,
            "bandwidth": str(v.bandwidth),
            "codecs": v.codec,
            "width": str(v.width),
            "height": str(v.height),
            "sar": "1:1",
        }
        if v.frame_rate:
            attrs["frameRate"] = frame_rate_attr(v.frame_rate)
        _segment_list(ET.SubElement(aset, "Representation", attrs), v)


def _audio_set(period: ET.Element, audio: Sequence[Rendition]) -> None:
    aset = ET.SubElement(
        period,
        "AdaptationSet",
        id="1",
        contentType="audio",
        mimeType="audio/mp4",
        segmentAlignment="true",
        startWithSAP="1",
    )
    for a in audio:
        attrs = {"id": a.id, "bandwidth": str(a.bandwidth), "codecs": a.codec}
        if a.sample_rate:
            attrs["audioSamplingRate"] = str(a.sample_rate)
        rep = ET.SubElement(aset, "Representation", attrs)
        if a.channels:
            ET.SubElement(
                rep,
                "AudioChannelConfiguration",
                schemeIdUri=AUDIO_CHANNELS_SCHEME,
                value=str(a.channels),
            )
        _segment_list(rep, a)


def render_mpd(
    manifest: TitleManifest,
    pathways: Sequence[Pathway] = (),
    steering_uri: str | None = None,
    start_offset_s: float | None = None,
    max_height: int | None = None,
) -> str:
    """The static DASH MPD of a title (see the module docstring for pathways/start)."""
    video, audio = select_renditions(manifest, max_height)
    root = ET.Element(
        "MPD",
        xmlns=MPD_NS,
        type="static",
        profiles=MPD_PROFILE,
        mediaPresentationDuration=iso_duration(manifest.duration_s),
        minBufferTime=iso_duration(manifest.segment_duration_s),
    )
    for p in pathways:
        ET.SubElement(root, "BaseURL", serviceLocation=p.id).text = p.base_uri
    if pathways:
        if steering_uri is None:
            raise ValueError("pathways given without a steering_uri")
        ET.SubElement(
            root,
            "ContentSteering",
            defaultServiceLocation=pathways[0].id,
            queryBeforeStart="true",
        ).text = steering_uri
    period = ET.SubElement(root, "Period", id="0", start="PT0S")
    _video_set(period, video)
    if audio:
        _audio_set(period, audio)
    if start_offset_s is not None:
        ET.SubElement(
            root,
            "SupplementalProperty",
            schemeIdUri=START_OFFSET_SCHEME,
            value=f"{start_offset_s:.3f}",
        )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
