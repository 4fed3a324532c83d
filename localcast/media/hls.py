"""HLS playlist rendering: title manifest -> media and multivariant playlists (pure).

Everything here is a pure function of a :class:`TitleManifest` (or one of its
renditions) plus the per-request choices of the caller: ingest renders the
origin's static copies (relative URIs, no pathways) and the control plane
renders per-session multivariant playlists with HLS Content Steering (one copy
of every variant per pathway, each pathway with its own base URI). No I/O, no
clock.

Media playlists always refer to the init and media segments by their bare
content-addressed names, so they resolve against wherever the playlist itself
was fetched from (a pathway's base URI included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localcast.media.manifest import Rendition, TitleManifest

HLS_VERSION = 7
AUDIO_GROUP = "aud"


@dataclass(frozen=True)
class Pathway:
    """One HLS Content Steering pathway (a DASH service location).

    ``base_uri`` is prepended to playlist file names, e.g.
    ``"http://127.0.0.2:8080/<token>/<title_id>/"``; ``""`` means relative.
    """

    id: str
    base_uri: str


def format_seconds(value: float) -> str:
    """Seconds as HLS decimal-floating-point with microsecond resolution."""
    return f"{value:.6f}"


def target_duration(rendition: Rendition) -> int:
    """EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer must fit."""
    longest = max((s.duration_s for s in rendition.segments), default=1.0)
    return max(1, int(longest + 0.5))


def render_media_playlist(rendition: Rendition) -> str:
    """The VOD media playlist of one rendition (relative, content-addressed names)."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(rendition)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{rendition.init.name}"',
    ]
    for seg in rendition.segments:
        lines.append(f"#EXTINF:{format_seconds(seg.duration_s)},")
        lines.append(seg.file.name)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def select_renditions(
    manifest: TitleManifest,
    max_height: int | None = None,
    codecs: Sequence[str] | None = None,
) -> tuple[tuple[Rendition, ...], tuple[Rendition, ...]]:
    """(video, audio) renditions left after the height cap and codec filter.

    ``max_height`` drops video taller than it but always keeps the lowest
    rung; ``codecs`` keeps renditions whose codec string starts with one of
    the given prefixes (``["avc1", "mp4a"]``). Raises ``ValueError`` when no
    video rendition is left (nothing playable to offer).
    """
    video = tuple(sorted(manifest.video, key=lambda r: (r.height, r.bandwidth)))
    audio = manifest.audio
    if codecs is not None:
        prefixes = tuple(codecs)
        video = tuple(r for r in video if r.codec.startswith(prefixes))
        audio = tuple(r for r in audio if r.codec.startswith(prefixes))
    if not video:
        raise ValueError(f"no video rendition of {manifest.title_id} matches the codecs")
    if max_height is not None:
        capped = tuple(r for r in video if r.height <= max_height)
        video = capped or video[:1]
    return video, audio


def _quoted(value: str) -> str:
    """An HLS quoted-string: no double quotes, CR or LF allowed inside."""
    if any(c in value for c in '"\r\n'):
        raise ValueError(f"not representable as an HLS quoted-string: {value!r}")
    return f'"{value}"'


def _audio_line(audio: Rendition, group: str, uri: str, default: bool) -> str:
    attrs = [
        "TYPE=AUDIO",
        f"GROUP-ID={_quoted(group)}",
        f"NAME={_quoted(audio.id)}",
        f"DEFAULT={'YES' if default else 'NO'}",
        "AUTOSELECT=YES",
    ]
    if audio.channels:
        attrs.append(f"CHANNELS={_quoted(str(audio.channels))}")
    attrs.append(f"URI={_quoted(uri)}")
    return "#EXT-X-MEDIA:" + ",".join(attrs)


def _variant_lines(
    video: Rendition, audio: Sequence[Rendition], group: str | None, uri: str, pathway: str
) -> list[str]:
    peak_audio = max((a.bandwidth for a in audio), default=0)
    avg_audio = max((a.average_bandwidth for a in audio), default=0)
    codecs = [video.codec, *dict.fromkeys(a.codec for a in audio)]
    attrs = [
        f"BANDWIDTH={video.bandwidth + peak_audio}",
        f"AVERAGE-BANDWIDTH={video.average_bandwidth + avg_audio}",
        f"CODECS={_quoted(','.join(codecs))}",
        f"RESOLUTION={video.width}x{video.height}",
    ]
    if video.frame_rate:
        attrs.append(f"FRAME-RATE={video.frame_rate:.3f}")
    if group is not None:
        attrs.append(f"AUDIO={_quoted(group)}")
    if pathway:
        attrs.append(f"PATHWAY-ID={_quoted(pathway)}")
    return ["#EXT-X-STREAM-INF:" + ",".join(attrs), uri]


def render_multivariant(
    manifest: TitleManifest,
    pathways: Sequence[Pathway] = (),
    steering_uri: str | None = None,
    start_offset_s: float | None = None,
    max_height: int | None = None,
    codecs: Sequence[str] | None = None,
) -> str:
    """The multivariant (master) playlist of a title.

    No ``pathways``: one set of variants with relative URIs (the origin's
    static copy). With ``pathways``: an ``EXT-X-CONTENT-STEERING`` tag (server
    ``steering_uri``, default pathway = the first), and every variant and an
    audio group ``aud-<pathway id>`` repeated per pathway with its
    ``PATHWAY-ID`` and URIs prefixed by the pathway's ``base_uri``.
    ``start_offset_s`` adds ``EXT-X-START`` (resume). ``max_height`` and
    ``codecs`` filter renditions as :func:`select_renditions` does.
    """
    video, audio = select_renditions(manifest, max_height, codecs)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if start_offset_s is not None:
        lines.append(f"#EXT-X-START:TIME-OFFSET={format_seconds(start_offset_s)},PRECISE=YES")
    if pathways:
        if steering_uri is None:
            raise ValueError("pathways given without a steering_uri")
        lines.append(
            f"#EXT-X-CONTENT-STEERING:SERVER-URI={_quoted(steering_uri)},"
            f"PATHWAY-ID={_quoted(pathways[0].id)}"
        )
    sets = list(pathways) or [Pathway(id="", base_uri="")]
    for p in sets:
        group = f"{AUDIO_GROUP}-{p.id}" if p.id else AUDIO_GROUP
        for i, a in enumerate(audio):
            lines.append(_audio_line(a, group, p.base_uri + a.playlist.name, i == 0))
    for p in sets:
        group = f"{AUDIO_GROUP}-{p.id}" if p.id else AUDIO_GROUP
        for v in video:
            uri = p.base_uri + v.playlist.name
            lines.extend(_variant_lines(v, audio, group if audio else None, uri, p.id))
    return "\n".join(lines) + "\n"
