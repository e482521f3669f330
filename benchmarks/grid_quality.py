"""Quality on real footage: ``ned edit --emotion happy`` and ``sad`` on the GRID clips, measured.

For each clip and emotion this runs the pipeline with the default backends, re-tracks the written EXR
frames with the same tracker, and prints the issue's acceptance figures:
  mouth r      Pearson correlation of the mouth-opening curves, original vs edited (target >= 0.95)
  jitter x     landmark jitter of the edited footage over the original's (target <= 1.20)
  identical    fraction of pixels outside the matte that are bit-identical to the plate (target 100%)
  AU change    mean change of the target emotion's action units, face-local units (> 0 = toward it)
It also writes docs/before_after.png (the README's picture: the first clip's frames, before and after).

    .venv/bin/python benchmarks/grid_quality.py [--clips DIR] [--docs DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ned_core import metrics, track
from ned_core.io import Plate, frame_path, read_exr_channels
from ned_core.io.colour import to_display_rgb8
from ned_core.keyframes import EmotionCurve
from ned_core.pipeline import OutputSpec, Pipeline, Shot

ROOT = Path(__file__).resolve().parents[1]
EMOTIONS = ("happy", "sad")
SHEET_FRAMES = (1020, 1045)


def edited_frames(pattern: str, frames: list[int], colorspace: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Display-referred uint8 RGB and mattes of the written EXR frames."""
    images, mattes = [], []
    for frame in frames:
        channels = read_exr_channels(frame_path(pattern, frame))
        rgb = np.stack([channels["R"], channels["G"], channels["B"]], axis=-1)
        images.append(to_display_rgb8(rgb, colorspace))
        mattes.append(channels["ned.matte"])
    return images, mattes


def face_crop(image: np.ndarray, box: np.ndarray, size: int = 300) -> np.ndarray:
    """The face region of ``image`` (its track box with a margin), scaled to ``size`` pixels square."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.8 * max(x1 - x0, y1 - y0)
    h, w = image.shape[:2]
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    right, bottom = int(min(w, cx + half)), int(min(h, cy + half))
    return cv2.resize(image[top:bottom, left:right], (size, size), interpolation=cv2.INTER_CUBIC)


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=str(ROOT.parent / "shared" / "data" / "grid"))
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    args = parser.parse_args()
    clips = sorted(Path(args.clips).glob("*.mpg"))
    tracker = track.get()
    pipeline = Pipeline(use_cache=False)
    rows, sheet_rows = [], []
    print(f"{'clip':<18}{'emotion':<9}{'mouth r':>9}{'jitter x':>10}{'identical':>11}{'AU change':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            shot = Shot(str(clip))
            with Plate.open(str(clip)) as plate:
                frames, colorspace = plate.frames, plate.colorspace
                originals = [plate.read(f) for f in frames]
            analysis, _ = pipeline.analyze(shot)
            before = [o.display_rgb8() for o in originals]
            orig_track = tracker.track(frames, before)
            orig_local = metrics.face_local_landmarks(orig_track)
            boxes = {f: orig_track.boxes[frames.index(f)] for f in SHEET_FRAMES}
            row_images = {f: [label(face_crop(before[frames.index(f)], boxes[f]), f"{clip.stem[5:]} {f}")]
                          for f in SHEET_FRAMES}
            for emotion in EMOTIONS:
                pattern = str(Path(tmp) / f"{clip.stem}_{emotion}.####.exr")
                pipeline.run(shot, EmotionCurve.parse_emotion(emotion),
                             OutputSpec(pattern, half=False, colorspace=colorspace))  # the plate's own: compared as is
                after, mattes = edited_frames(pattern, frames, colorspace)
                new_track = tracker.track(frames, after)
                identical = np.mean([
                    metrics.identical_outside(o.pixels[..., :3], _rgb(pattern, f), m)
                    for o, f, m in zip(originals, frames, mattes, strict=True)])
                result = (metrics.mouth_correlation(orig_track.landmarks, new_track.landmarks),
                          metrics.jitter_ratio(orig_track.landmarks, new_track.landmarks), identical,
                          metrics.au_change_toward(orig_local, metrics.face_local_landmarks(new_track), emotion))
                rows.append((clip.stem, emotion, *result))
                print(f"{clip.stem:<18}{emotion:<9}{result[0]:9.3f}{result[1]:10.2f}{result[2]:10.2%}{result[3]:+11.3f}")
                for f in SHEET_FRAMES:
                    row_images[f].append(label(face_crop(after[frames.index(f)], boxes[f]), emotion))
            sheet_rows.extend(np.concatenate(row_images[f], axis=1) for f in SHEET_FRAMES)
    worst = (min(r[2] for r in rows), max(r[3] for r in rows), min(r[4] for r in rows))
    print(f"worst: mouth r {worst[0]:.3f} (>= 0.95), jitter x {worst[1]:.2f} (<= 1.20), "
          f"identical {worst[2]:.2%} (100%)")
    docs = Path(args.docs)
    docs.mkdir(exist_ok=True)
    # docs/contact_sheet.png (a row per emotion) is emotion_reads.py's; this writes the README's picture.
    cv2.imwrite(str(docs / "before_after.png"), cv2.cvtColor(np.concatenate(sheet_rows[:2], axis=0),
                                                             cv2.COLOR_RGB2BGR))
    print(f"wrote {docs / 'before_after.png'}")


def _rgb(pattern: str, frame: int) -> np.ndarray:
    channels = read_exr_channels(frame_path(pattern, frame))
    return np.stack([channels["R"], channels["G"], channels["B"]], axis=-1)


if __name__ == "__main__":
    main()
