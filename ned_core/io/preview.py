"""A before|after review movie: the plate and the edit side by side, H.264 in MP4, with the plate's sound.

Frames arrive as display-referred uint8 RGB pairs (what a reviewer looks at, not data to comp with).
Video is libx264 (yuv420p, tagged Rec.709) when this PyAV build has it, else MPEG-4 part 2. The source's
first audio stream, trimmed to the frames shown, is re-encoded to AAC (MP4 players expect it; GRID's
MP2 is not). Written under a temporary name and renamed, like every NED output (``atomic.py``). Must
not import torch or zmq.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from ned_core.errors import InputNotFoundError, OutputError
from ned_core.io.atomic import commit, discard, make_parent, temp_path

_CRF = "18"  # visually lossless: a review copy should not hide the edit behind compression


@functools.lru_cache(maxsize=1)
def video_codec() -> str:
    """``libx264`` when this PyAV build can encode with it, else ``mpeg4``."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except (av.error.FFmpegError, ValueError):
        return "mpeg4"


def _even(image: np.ndarray) -> np.ndarray:
    """Pad the bottom/right edge by one pixel where needed: yuv420p needs even sizes."""
    height, width = image.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return image
    return np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def _side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    if before.shape != after.shape or before.ndim != 3 or before.shape[2] != 3:
        raise ValueError(f"preview frames must be two equal (H, W, 3) images, got {before.shape} and "
                         f"{after.shape}")
    return _even(np.ascontiguousarray(np.concatenate([before, after], axis=1), dtype=np.uint8))


def _add_video(output: Any, rate: Fraction, width: int, height: int) -> Any:
    codec = video_codec()
    options = {"crf": _CRF, "preset": "veryfast"} if codec == "libx264" else {}
    stream = output.add_stream(codec, rate=rate, options=options)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if codec == "mpeg4":
        stream.bit_rate = 8_000_000
    context = stream.codec_context
    context.colorspace, context.color_range = 1, 1  # BT.709 matrix, limited range (what players assume)
    context.color_primaries, context.color_trc = 1, 1
    return stream


def _source_audio(path: str) -> tuple[Any, Any] | None:
    """(container, first audio stream) of ``path``, or None when it has no audio."""
    if not os.path.isfile(path):
        raise InputNotFoundError(f"missing file {path} (preview audio)", path=path)
    container = av.open(path)
    if not container.streams.audio:
        container.close()
        return None
    return container, container.streams.audio[0]


def _audio_samples(container: Any, stream: Any, start: float, duration: float, rate: int,
                   layout: str) -> np.ndarray:
    """float32 (channels, N) samples of ``stream`` from ``start`` seconds after the video's first frame.

    Silence fills anything the source lacks, so the sound stays in sync with the pictures.
    """
    video = container.streams.video[0] if container.streams.video else None
    origin = float(video.start_time * video.time_base) if video is not None and video.start_time else 0.0
    channels = av.AudioLayout(layout).nb_channels
    total = int(round(duration * rate))
    out = np.zeros((channels, total), np.float32)
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    position: int | None = None
    for decoded in container.decode(stream):
        for frame in resampler.resample(decoded):
            if frame.pts is not None:
                position = int(round((float(frame.pts * frame.time_base) - origin - start) * rate))
            elif position is None:
                position = int(round(-start * rate))
            samples = frame.to_ndarray().reshape(channels, -1)
            lo, hi = max(position, 0), min(position + samples.shape[1], total)
            if hi > lo:
                out[:, lo:hi] = samples[:, lo - position:hi - position]
            position += samples.shape[1]
        if position is not None and position >= total:
            break
    return out


def _encode_audio(output: Any, stream: Any, samples: np.ndarray, layout: str) -> None:
    size = stream.codec_context.frame_size or 1024
    for offset in range(0, samples.shape[1], size):
        chunk = np.ascontiguousarray(samples[:, offset:offset + size])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = stream.codec_context.sample_rate
        frame.pts = offset
        for packet in stream.encode(frame):
            output.mux(packet)
    for packet in stream.encode(None):
        output.mux(packet)


def write_preview(path: str, pairs: Iterable[tuple[np.ndarray, np.ndarray]], fps: float,
                  audio_from: str | None = None, audio_offset: float = 0.0) -> None:
    """Write a side-by-side before|after MP4 from uint8 RGB display-referred frame pairs.

    Parameters
    ----------
    path
        Destination .mp4 (its directory is created).
    pairs
        (before, after) uint8 (H, W, 3) images, equal sizes; consumed as they come (bounded memory).
    fps
        Frame rate (29.97 and 23.976 are kept as 30000/1001 and 24000/1001).
    audio_from
        A movie whose first audio stream goes with the pictures; ignored when it has no audio.
    audio_offset
        Seconds into ``audio_from`` (after its first video frame) where the first pair starts: a
        preview of frames 1011-1030 of a 25 fps movie numbered from 1001 needs 0.4.

    Raises
    ------
    OutputError
        No frames, or the movie cannot be written; no partial file is left behind.
    """
    if not fps or fps <= 0:
        raise OutputError(f"cannot write {path}: frame rate {fps!r} is not positive", path=path)
    rate = Fraction(fps).limit_denominator(1001)
    make_parent(path)
    temp = temp_path(path, ".tmp.mp4")
    source = _source_audio(audio_from) if audio_from else None
    count = 0
    try:
        # faststart: the index goes first, so a review tool can play the file while it downloads
        with av.open(temp, "w", format="mp4", options={"movflags": "+faststart"}) as output:
            video = audio = None
            layout, sample_rate = "stereo", 48000
            for before, after in pairs:
                image = _side_by_side(before, after)
                if video is None:
                    video = _add_video(output, rate, image.shape[1], image.shape[0])
                    if source is not None:
                        in_context = source[1].codec_context
                        layout = "mono" if in_context.channels == 1 else "stereo"
                        sample_rate = in_context.sample_rate
                        audio = output.add_stream("aac", rate=sample_rate, layout=layout)
                elif (image.shape[1], image.shape[0]) != (video.width, video.height):
                    raise ValueError(f"frame {count} is {image.shape[1]}x{image.shape[0]}, the preview is "
                                     f"{video.width}x{video.height}")
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame = frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709,
                                       dst_color_range=ColorRange.MPEG)
                frame.pts = count
                for packet in video.encode(frame):
                    output.mux(packet)
                count += 1
            if video is None:
                raise OutputError(f"cannot write {path}: no frames for the preview", path=path)
            for packet in video.encode(None):
                output.mux(packet)
            if audio is not None and source is not None:
                samples = _audio_samples(source[0], source[1], audio_offset, count / float(rate),
                                         sample_rate, layout)
                _encode_audio(output, audio, samples, layout)
        commit(temp, path)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise OutputError(f"cannot write {path}: {exc}", path=path) from exc
    finally:
        if source is not None:
            source[0].close()
        discard(temp)
