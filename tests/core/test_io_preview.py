"""The before|after review movie: size, codec, frame count, the plate's audio, atomic write."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from io_fixtures import GRID_MOVIE

from ned_core.errors import OutputError
from ned_core.io import Plate
from ned_core.io.preview import video_codec, write_preview


@pytest.fixture(scope="module")
def grid_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """25 frames of the GRID clip: the plate and a visibly changed 'edit' of it."""
    with Plate.open(GRID_MOVIE, frame_range=(1001, 1025)) as plate:
        befores = [plate.read(f).display_rgb8() for f in plate.frames]
    return [(b, (255 - b).astype(np.uint8)) for b in befores]


def _probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        audio = container.streams.audio
        context = video.codec_context
        info: dict[str, object] = {
            "codec": context.name, "size": (context.width, context.height), "fps": float(video.average_rate),
            "frames": frames, "audio": audio[0].codec_context.name if audio else None}
        if audio:
            container.seek(0)
            samples = sum(f.samples for f in container.decode(audio=0))
            info["audio_seconds"] = samples / audio[0].codec_context.sample_rate
    return info


def test_side_by_side_with_the_plate_audio(tmp_path: Path,
                                           grid_pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    out = tmp_path / "review" / "preview.mp4"
    write_preview(str(out), iter(grid_pairs), fps=25.0, audio_from=GRID_MOVIE)
    info = _probe(out)
    assert info["codec"] == ("h264" if video_codec() == "libx264" else "mpeg4")
    assert info["size"] == (720, 288) and info["fps"] == 25.0
    frames = info["frames"]
    assert isinstance(frames, list) and len(frames) == 25
    before, after = grid_pairs[12]
    shown = frames[12]
    # left half is the plate, right half the edit (compressed, so compared on average)
    assert np.abs(shown[:, :360].astype(int) - before).mean() < 4
    assert np.abs(shown[:, 360:].astype(int) - after).mean() < 4
    assert info["audio"] == "aac"
    assert info["audio_seconds"] == pytest.approx(1.0, abs=0.05)  # trimmed to the 25 frames shown
    assert [p.name for p in out.parent.iterdir()] == ["preview.mp4"]


def test_no_audio_and_odd_sizes(tmp_path: Path) -> None:
    frame = np.full((33, 45, 3), 128, np.uint8)
    out = tmp_path / "p.mp4"
    write_preview(str(out), [(frame, frame)] * 5, fps=23.976)
    info = _probe(out)
    assert info["size"] == (90, 34) and info["audio"] is None
    assert info["fps"] == pytest.approx(24000 / 1001, abs=1e-3)
    assert len(info["frames"]) == 5  # type: ignore[arg-type]


def test_audio_from_a_silent_source_is_skipped(tmp_path: Path) -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    silent = tmp_path / "silent.mp4"
    write_preview(str(silent), [(frame, frame)] * 3, fps=25)
    out = tmp_path / "p.mp4"
    write_preview(str(out), [(frame, frame)] * 3, fps=25, audio_from=str(silent))
    assert _probe(out)["audio"] is None


def test_audio_offset_is_applied(tmp_path: Path, grid_pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    out = tmp_path / "late.mp4"
    write_preview(str(out), grid_pairs[:10], fps=25.0, audio_from=GRID_MOVIE, audio_offset=2.8)
    # the source has ~2.95 s of sound: 0.4 s asked from 2.8 s on is padded with silence, not shifted
    assert _probe(out)["audio_seconds"] == pytest.approx(0.4, abs=0.05)


def test_failures_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        write_preview(str(tmp_path / "empty.mp4"), [], fps=25)
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(OutputError):
        write_preview(str(tmp_path / "mixed.mp4"), [(frame, frame), (frame[:4], frame[:4])], fps=25)
    with pytest.raises(OutputError):
        write_preview(str(tmp_path / "nofps.mp4"), [(frame, frame)], fps=0)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OutputError):
        write_preview(str(tmp_path / "file" / "p.mp4"), [(frame, frame)], fps=25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
