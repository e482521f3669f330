"""Do NED's emotion edits read? Issue 9's benchmark: one run prints every figure with its threshold.

Measures the product only through its public path: each edit is what ``ned edit INPUT --emotion LABEL
--output DIR/x.####.exr`` writes with default options (the same ``Pipeline``/``Shot``/``EmotionCurve``/
``OutputSpec`` calls ``ned_engine.cli.run_edit`` makes, in-process so the face mesh stays warm; RGBA depth
chosen as the CLI does; an analysis cache as the CLI keeps, here in a fresh folder). Each written EXR is
read back with OpenImageIO and shown on the display with the product's OCIO helper
(``to_display_rgb8`` with the colourspace the EXR header names), then measured:

London Set (``../shared/data/london``: neutral ``NNN_03``, real smile ``NNN_08``)
  - the emotion judge (``benchmarks/judge.py``): per label, mean p(target) and top-1 rate of the edits,
    next to the unedited neutral photos and the real smiles of the same persons; beside it, as a
    cross-check that checks nothing, a second classifier trained apart (``benchmarks/second_judge.py``,
    FER-2013's mini-Xception) on the same face: an edit that reads to one network only reads its quirks;
  - identity: dlib face-descriptor distance source<->edit next to each person's real neutral<->smile;
  - happy: cosine of the edit's MediaPipe landmark displacement (edit - neutral) to the real smile's
    (smile - neutral), both aligned on the stable points (``calibrate.smile_displacement``), and the rig's
    predicted displacement as ``benchmarks/london_smile.py`` measures it; how much the edit narrows the
    eyes (the mean lid-pair gap's change, ``mesh.LID_PAIRS``) next to the real smile, medians over persons.
  No person's own photos may help edit that person. ``--persons held-out`` (default) edits only the
  persons with even ids; every learned file in ``ned_core/data`` that lists its training persons is
  checked, and any that used an edited person is rebuilt without them (the appearance data, learned from
  all 35, as ``--option appearance.model=FILE``; the FACS smile calibration, also learned from all 35,
  as ``--option manipulate.calibration=FILE``). ``--persons all`` edits all 35 with the shipped
  learned data and says which edited persons it was learned from.

GRID (``../shared/data/grid``, three talking clips)
  - judge mean per-frame p(target) of source and edit (and the second classifier's rise); mouth-opening
    r, jitter ratio and pixels changed outside the matte (``ned_core.metrics``, as
    ``benchmarks/grid_quality.py``); identity distance source<->edit (every 5th frame).

A full run (all labels, persons and clips) rewrites ``docs/contact_sheet.png`` (GRID, a row per label),
``docs/london_sheet.png`` (neutral, happy edit, real smile) and ``docs/london_labels.png`` (four held-out
persons, every label). The judges only measure: neither is ever a loss and no product parameter may be
searched on their scores.

    bash benchmarks/setup_judge.sh          # once
    .venv/bin/python benchmarks/emotion_reads.py [--persons held-out|all] [--labels happy,sad]
        [--limit N] [--clips a,b] [--no-london] [--no-grid] [--json out/emotion_reads.json]

Imports ned_core's public API and the other benchmarks' helpers; the product never imports this.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import OpenImageIO as oiio

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import grid_quality  # noqa: E402  (benchmarks/ is not a package)
import judge as judges  # noqa: E402
import second_judge  # noqa: E402

from ned_core import EMOTIONS, mesh, metrics, track  # noqa: E402
from ned_core.cache import AnalysisCache  # noqa: E402
from ned_core.io import Plate, read_exr_channels  # noqa: E402
from ned_core.io.colour import convert, to_display_rgb8  # noqa: E402
from ned_core.keyframes import EmotionCurve  # noqa: E402
from ned_core.manipulate import calibrate  # noqa: E402
from ned_core.model_files import save_arrays  # noqa: E402
from ned_core.pipeline import Backends, OutputSpec, Pipeline, Shot  # noqa: E402

ROOT = BENCH.parent
LONDON = ROOT.parent / "shared" / "data" / "london"
GRID = ROOT.parent / "shared" / "data" / "grid"
DATA = ROOT / "ned_core" / "data"
HELD_OUT_CACHE = BENCH / ".cache" / "held_out"
IDENTITY_STEP = 5  # GRID identity on every 5th frame: dlib's descriptor is the slow part
SHEET_FRAMES = grid_quality.SHEET_FRAMES
SHEET_PERSONS = 4
SHEET_CELL = 128  # px per GRID contact-sheet cell: 8 rows x 6 cells stay under 1.5 MB
LABELS_CELL = 192  # px per cell of the London sheet of every label (4 persons x 7 cells)

# Issue 9's "done when" thresholds.
TOP1_LABELS = ("happy", "surprised", "sad", "angry")  # London: top-1 is the target on >= 50% of faces
MEAN_P_LABELS = {"fear": 0.3, "disgusted": 0.3}  # London: mean p(target) >= 0.3
GRID_RISE, MOUTH_R, JITTER, COSINE = 0.3, 0.95, 1.2, 0.8


# -- the product, as `ned edit` runs it --------------------------------------------------------------------

def make_pipeline(options: dict[str, dict[str, Any]], cache_dir: Path) -> Pipeline:
    """``ned edit``'s pipeline: the default preset plus ``--option`` settings, with an analysis cache."""
    backends = Backends.preset("default")
    for stage, values in options.items():
        backends.options.setdefault(stage, {}).update(values)
    return Pipeline(backends, cache=AnalysisCache(cache_dir), use_cache=True)


def ned_edit(pipeline: Pipeline, plate: str, label: str, pattern: str) -> dict[int, str]:
    """``ned edit PLATE --emotion LABEL --output PATTERN`` (defaults): frame -> written EXR path."""
    # The CLI's defaults: the output colourspace and its depth are picked per plate.
    result = pipeline.run(Shot(plate=plate), EmotionCurve.parse_emotion(label), OutputSpec(pattern, compression="zip"))
    return result.written


def read_output(path: str) -> dict[str, Any]:
    """A written EXR: RGB (float32), matte, display RGB8 (via its header's colourspace), RGB stored as half."""
    image = oiio.ImageInput.open(path)
    if image is None:
        raise RuntimeError(f"cannot open {path}: {oiio.geterror()}")
    try:
        spec = image.spec()
        colorspace = spec.get_string_attribute("oiio:ColorSpace") or spec.get_string_attribute("ned:colorspace")
        half = spec.channelformat(0) == oiio.HALF
    finally:
        image.close()
    channels = read_exr_channels(path)
    rgb = np.stack([channels["R"], channels["G"], channels["B"]], axis=-1)
    return {"rgb": rgb, "matte": channels["ned.matte"], "display": to_display_rgb8(rgb, colorspace),
            "half": half, "colorspace": colorspace}


def changed_outside(plate_rgb: np.ndarray, plate_colorspace: str, out: dict[str, Any]) -> tuple[int, float]:
    """(pixels outside the matte whose 8-bit codes differ from the plate's, fraction identical).

    The output is scene-linear (issue 8's colour round trip): it is converted back to the plate's
    colourspace and quantised to the plate's 8 bits, as a compositor going back to the plate would; that
    must give the plate's codes exactly outside the matte.
    """
    back = out["rgb"] if out["colorspace"] == plate_colorspace else convert(out["rgb"], out["colorspace"],
                                                                             plate_colorspace)

    def codes(rgb: np.ndarray) -> np.ndarray:
        return np.rint(np.clip(rgb.astype(np.float64), 0.0, 1.0) * 255.0)

    outside = out["matte"] == 0
    differs = np.any(codes(back) != codes(plate_rgb), axis=-1) & outside
    total = int(outside.sum())
    return int(differs.sum()), 1.0 - int(differs.sum()) / max(total, 1)


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def judged(image_rgb8: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """The issue's judge's verdict and the second classifier's on the face the first one found."""
    first = judges.judge(image_rgb8)
    return first, second_judge.second_judge().judge(image_rgb8, first["box"])


def verdict(probs: dict[str, Any], target: str) -> tuple[float, bool]:
    """(p(target), top-1 is target); a face the judge does not find counts as p 0 and a miss."""
    if not probs["face"]:
        return 0.0, False
    return probs["probs"][target], probs["top"] == target


def summarise(verdicts: list[dict[str, Any]], target: str) -> dict[str, Any]:
    """Mean p(target) and top-1 rate, and what the judge read instead (each label's top-1 share)."""
    pairs = [verdict(v, target) for v in verdicts]
    tops = [v["top"] for v in verdicts if v["face"]]
    return {"p": float(np.mean([p for p, _ in pairs])) if pairs else float("nan"),
            "top1": float(np.mean([t for _, t in pairs])) if pairs else float("nan"),
            "reads_as": {label: tops.count(label) / len(verdicts) for label in sorted(set(tops))},
            "no_face": int(sum(not v["face"] for v in verdicts)), "n": len(verdicts)}


def embedding_distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Euclidean distance of two face descriptors (None where a face was not found)."""
    return None if a is None or b is None else float(np.linalg.norm(a - b))


def mean_or_nan(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else float("nan")


# -- who may help edit whom ---------------------------------------------------------------------------------

def learned_persons() -> dict[str, list[str]]:
    """Per learned file in ned_core/data: the London person ids it was learned from (``*_ids`` arrays)."""
    out = {}
    for path in sorted(DATA.glob("*.npz")):
        with np.load(path) as data:
            ids = [k for k in data.files if k.endswith("_ids")]
            if ids:
                out[path.name] = sorted({f"{int(i):03d}" for k in ids for i in np.ravel(data[k])})
    return out


def rebuild_calibration(exclude: set[str], out: Path) -> Path:
    """``python -m ned_core.manipulate.calibrate`` on the London pairs minus ``exclude``, written to ``out``."""
    keep = [p for p in calibrate.person_ids(LONDON) if p not in exclude]
    return save_arrays(calibrate.calibrate(calibrate.load_pairs(LONDON, keep)), out)


def rebuild_appearance(exclude: set[str], out: Path) -> Path:
    """``python -m ned_core.appearance.build`` on the London pairs minus ``exclude``, written to ``out``."""
    from ned_core.appearance import build as appearance_build

    keep = [p for p in calibrate.person_ids(LONDON) if p not in exclude]
    return save_arrays(appearance_build.build(LONDON, keep), out)


# Learned files the benchmark can rebuild without given persons: file -> (stage, option, builder).
REBUILDS = {"facs_smile.npz": ("manipulate", "calibration", rebuild_calibration),
            "appearance.npz": ("appearance", "model", rebuild_appearance)}


def held_out_setup(persons: list[str], mode: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Backend options that keep ``persons`` out of every learned file, and lines saying what was done."""
    options: dict[str, dict[str, Any]] = {}
    notes = []
    edited = set(persons)
    for name, trained in learned_persons().items():
        overlap = sorted(edited & set(trained))
        if not overlap:
            notes.append(f"{name}: learned from {len(trained)} persons, none of them edited here")
        elif mode == "all":
            notes.append(f"{name}: shipped, learned from {len(overlap)} of the edited persons "
                         f"(NOT held out: {', '.join(overlap)})")
        elif name in REBUILDS:
            stage, key, build = REBUILDS[name]
            path = build(edited, HELD_OUT_CACHE / name)
            options.setdefault(stage, {})[key] = str(path)
            notes.append(f"{name}: rebuilt without the {len(edited)} edited persons -> {path} "
                         f"(--option {stage}.{key}=...)")
        else:
            notes.append(f"{name}: CONTAMINATED, learned from edited persons {', '.join(overlap)} and the "
                         f"benchmark has no rebuild recipe for it (add one to REBUILDS)")
    return options, notes


# -- London ------------------------------------------------------------------------------------------------

def london_persons(mode: str, limit: int | None) -> list[str]:
    ids = calibrate.person_ids(LONDON)
    chosen = calibrate.split_persons(ids)[1] if mode == "held-out" else ids
    return chosen[:limit] if limit else chosen


def landmark_crop(image: np.ndarray, landmarks: np.ndarray, size: int = 256) -> np.ndarray:
    """A square crop around the face mesh (1.4x its extent), scaled to ``size``."""
    x0, y0 = landmarks[:, :2].min(axis=0)
    x1, y1 = landmarks[:, :2].max(axis=0)
    return grid_quality.face_crop(image, np.array([x0, y0, x1, y1]), size)


def run_london(args: argparse.Namespace, labels: list[str], work: Path) -> dict[str, Any]:
    persons = london_persons(args.persons, args.limit)
    options, notes = held_out_setup(persons, args.persons)
    for line in notes:
        print(f"  learned data: {line}")
    pipeline = make_pipeline(options, work / "cache")
    ident = judges.identity_judge()
    neutral_paths = {p: LONDON / calibrate.NEUTRAL.format(pid=p) for p in persons}
    smile_paths = {p: LONDON / calibrate.SMILING.format(pid=p) for p in persons}
    neutral_rgb = {p: read_rgb(neutral_paths[p]) for p in persons}
    smile_rgb = {p: read_rgb(smile_paths[p]) for p in persons}
    unedited, unedited2 = {}, {}
    smiles, smiles2 = {}, {}
    for p in persons:
        unedited[p], unedited2[p] = judged(neutral_rgb[p])
        smiles[p], smiles2[p] = judged(smile_rgb[p])
    source_emb = {p: ident.embedding(neutral_rgb[p]) for p in persons}
    real_identity = {p: embedding_distance(source_emb[p], ident.embedding(smile_rgb[p])) for p in persons}
    photo_mesh = calibrate.PhotoMesh() if "happy" in labels else None
    pairs = calibrate.load_pairs(LONDON, persons, photo_mesh) if photo_mesh else {}

    per_label: dict[str, Any] = {}
    per_photo: dict[str, dict[str, Any]] = {p: {} for p in persons}
    happy_displays: dict[str, np.ndarray] = {}
    # Every label on the first persons, cropped at once (the full photos are large): docs/london_labels.png.
    label_cells: dict[str, list[np.ndarray]] = {}
    if args.sheets and pairs:
        label_cells = {p: [grid_quality.label(landmark_crop(neutral_rgb[p], pairs[p][0], LABELS_CELL),
                                              f"{p} source")] for p in persons[:SHEET_PERSONS]}
    cosines: dict[str, float] = {}
    narrowing: dict[str, tuple[float, float]] = {}
    for label in labels:
        t0 = time.time()
        verdicts, seconds, identities = [], [], []
        for pid in persons:
            pattern = str(work / f"london_{pid}_{label}.####.exr")
            written = ned_edit(pipeline, str(neutral_paths[pid]), label, pattern)
            out = read_output(next(iter(written.values())))
            v, v2 = judged(out["display"])
            d = embedding_distance(source_emb[pid], ident.embedding(out["display"]))
            verdicts.append(v)
            seconds.append(v2)
            identities.append(d)
            per_photo[pid][label] = {"probs": v["probs"], "top": v["top"], "identity": d,
                                     "second": {"probs": v2["probs"], "top": v2["top"]}}
            if pid in label_cells and label != "neutral":
                label_cells[pid].append(grid_quality.label(
                    landmark_crop(out["display"], pairs[pid][0], LABELS_CELL), label))
            if label == "happy":
                happy_displays[pid] = out["display"]
                png = work / f"london_{pid}_happy.png"
                cv2.imwrite(str(png), cv2.cvtColor(out["display"], cv2.COLOR_RGB2BGR))
                neutral_px, smiling_px = pairs[pid]
                edit_px = photo_mesh.landmarks(png)
                _, real = calibrate.smile_displacement(neutral_px, smiling_px)
                _, moved = calibrate.smile_displacement(neutral_px, edit_px)
                cosines[pid] = calibrate.cosine(moved, real)
                narrowing[pid] = (eye_narrowing(moved), eye_narrowing(real))
            for f in written.values():
                Path(f).unlink()
        per_label[label] = {"edit": summarise(verdicts, label),
                            "unedited": summarise(list(unedited.values()), label),
                            "identity": mean_or_nan(identities),
                            "second": {"edit": summarise(seconds, label),
                                       "unedited": summarise(list(unedited2.values()), label)}}
        e, e2 = per_label[label]["edit"], per_label[label]["second"]["edit"]
        print(f"  london {label:<9} p {e['p']:.3f} top-1 {e['top1']:.0%}; second judge p {e2['p']:.3f} "
              f"top-1 {e2['top1']:.0%} ({len(persons)} photos, {time.time() - t0:.0f} s)", flush=True)
    if photo_mesh is not None:
        photo_mesh.close()

    result: dict[str, Any] = {
        "persons_mode": args.persons, "persons": persons, "learned_data": notes, "options": options,
        "labels": per_label,
        "real_smiles": summarise(list(smiles.values()), "happy"),
        "second_real_smiles": summarise(list(smiles2.values()), "happy"),
        "second_unedited_neutral": summarise(list(unedited2.values()), "neutral"),
        "unedited_neutral": summarise(list(unedited.values()), "neutral"),
        "unedited_happy": summarise(list(unedited.values()), "happy"),
        "real_identity": mean_or_nan(list(real_identity.values())),
        "per_photo": per_photo,
        "real_identity_per_person": real_identity,
    }
    if cosines:
        result["happy_cosine"] = {"mean": float(np.mean(list(cosines.values()))),
                                  "min": float(np.min(list(cosines.values()))), "per_person": cosines}
        edit_n, real_n = zip(*narrowing.values(), strict=True)
        result["happy_eye_narrowing"] = {"edit": float(np.median(edit_n)), "real": float(np.median(real_n)),
                                         "per_person": narrowing}
    if "happy" in labels:
        result["rig_cosine"] = rig_cosine(persons, options)
    if happy_displays and args.sheets:
        shown = persons[:SHEET_PERSONS]
        rows = []
        for pid in shown:
            neutral_px = pairs[pid][0]
            cells = [grid_quality.label(landmark_crop(img, neutral_px), f"{pid} {text}")
                     for img, text in ((neutral_rgb[pid], "neutral"), (happy_displays[pid], "NED happy"),
                                       (smile_rgb[pid], "real smile"))]
            rows.append(np.concatenate(cells, axis=1))
        write_png(args.docs / "london_sheet.png", np.concatenate(rows, axis=0))
    if label_cells:
        write_png(args.docs / "london_labels.png",
                  np.concatenate([np.concatenate(cells, axis=1) for cells in label_cells.values()], axis=0))
    return result


def eye_narrowing(displacement: np.ndarray) -> float:
    """How far a face-local displacement closes the eyes: the mean lid-pair gap's decrease (eye-corner
    distances; a smile's cheeks push the lower lids up)."""
    gaps = [displacement[lower, 1] - displacement[upper, 1] for pairs in mesh.LID_PAIRS for upper, lower in pairs]
    return -float(np.mean(gaps))


def rig_cosine(persons: list[str], options: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The rig's predicted happy displacement vs the real smile (``calibrate.smile_cosines``)."""
    try:
        from ned_core.manipulate.facs import FacsRig

        rig = FacsRig(**({"calibration": options["manipulate"]["calibration"]}
                         if "calibration" in options.get("manipulate", {}) else {}))
        cos = calibrate.smile_cosines(rig, calibrate.load_pairs(LONDON, persons))
        full = np.array([c[0] for c in cos.values()])
        mouth = np.array([c[1] for c in cos.values()])
        return {"full_mean": float(full.mean()), "mouth_cheeks_mean": float(mouth.mean())}
    except Exception as exc:  # the rig's API may change while the product is reworked; the edit cosine stays
        print(f"  rig cosine unavailable: {exc}")
        return None


# -- GRID --------------------------------------------------------------------------------------------------

def run_grid(args: argparse.Namespace, labels: list[str], work: Path) -> dict[str, Any]:
    clips = sorted(GRID.glob("*.mpg"))
    if args.clips:
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c.stem in wanted or c.name in wanted or c.stem[5:] in wanted]
    pipeline = make_pipeline({}, work / "cache")
    tracker = track.get()
    ident = judges.identity_judge()
    out: dict[str, Any] = {}
    sheet_cells: dict[str, list[np.ndarray]] = {"source": []} | {label: [] for label in labels}
    for clip in clips:
        t0 = time.time()
        with Plate.open(str(clip)) as plate:
            frames = list(plate.frames)
            originals = [plate.read(f) for f in frames]
        before = [o.display_rgb8() for o in originals]
        src_verdicts, src_seconds = zip(*(judged(img) for img in before), strict=True)
        src_track = tracker.track(frames, before)
        id_frames = list(range(0, len(frames), IDENTITY_STEP))
        src_emb = {i: ident.embedding(before[i]) for i in id_frames}
        boxes = {f: src_track.boxes[frames.index(f)] for f in SHEET_FRAMES if f in frames}
        for f, box in boxes.items():
            sheet_cells["source"].append(grid_quality.label(grid_quality.face_crop(
                before[frames.index(f)], box, SHEET_CELL), f"{clip.stem.split('_')[-1]} {f}"))
        rows = {}
        for label in labels:
            pattern = str(work / f"{clip.stem}_{label}.####.exr")
            written = ned_edit(pipeline, str(clip), label, pattern)
            outs = [read_output(written[f]) for f in frames]
            after = [o["display"] for o in outs]
            edit_verdicts, edit_seconds = zip(*(judged(img) for img in after), strict=True)
            new_track = tracker.track(frames, after)
            changed = [changed_outside(o.pixels[..., :3], o.colorspace, x)
                       for o, x in zip(originals, outs, strict=True)]
            dists = [embedding_distance(src_emb[i], ident.embedding(after[i])) for i in id_frames]
            src, edit = summarise(list(src_verdicts), label), summarise(list(edit_verdicts), label)
            src2, edit2 = summarise(list(src_seconds), label), summarise(list(edit_seconds), label)
            rows[label] = {
                "source": src, "edit": edit, "rise": edit["p"] - src["p"],
                "mouth_r": metrics.mouth_correlation(src_track.landmarks, new_track.landmarks),
                "jitter": metrics.jitter_ratio(src_track.landmarks, new_track.landmarks),
                "changed_outside": int(sum(c for c, _ in changed)),
                "identical_outside": float(np.mean([f for _, f in changed])),
                "identity": mean_or_nan(dists),
                "second": {"source": src2, "edit": edit2, "rise": edit2["p"] - src2["p"]},
            }
            for f, box in boxes.items():
                sheet_cells[label].append(grid_quality.label(grid_quality.face_crop(
                    after[frames.index(f)], box, SHEET_CELL), label))
            for f in written.values():
                Path(f).unlink()
        out[clip.stem] = rows
        print(f"  grid {clip.stem}: {len(labels)} labels in {time.time() - t0:.0f} s", flush=True)
    if args.sheets and clips:
        sheet = np.concatenate([np.concatenate(cells, axis=1) for cells in sheet_cells.values()], axis=0)
        write_png(args.docs / "contact_sheet.png", sheet)
    return out


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=float))
    tmp.replace(path)


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    tmp.replace(path)
    print(f"  wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


# -- the report --------------------------------------------------------------------------------------------

def mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def reads_as(summary: dict[str, Any], most: int = 2) -> str:
    """The judge's commonest top-1 labels, e.g. "fear 61%, sad 22%"."""
    shares = sorted(summary.get("reads_as", {}).items(), key=lambda kv: -kv[1])[:most]
    return ", ".join(f"{label} {share:.0%}" for label, share in shares) or "-"


def second_cell(row: dict[str, Any]) -> str:
    """The second classifier's London figures for one label: edit p, top-1 (unedited p)."""
    e, u = row["second"]["edit"], row["second"]["unedited"]
    return f"{e['p']:.3f}, {e['top1']:.0%} ({u['p']:.3f})"


def london_table(res: dict[str, Any], labels: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Markdown lines and the threshold checks of the London part."""
    smiles, real_id = res["real_smiles"], res["real_identity"]
    lines = [f"### London Set: {len(res['persons'])} persons, "
             + ("held-out persons only (even ids; learned data without them)" if res["persons_mode"] == "held-out"
                else "ALL persons (shipped learned data; includes persons it was learned from)"),
             "",
             "| label | edit p(target) | edit top-1 | edit reads as | unedited p(target) | unedited top-1 "
             "| identity src-edit | threshold | result | second judge: edit p, top-1 (unedited p) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    checks = []
    for label in labels:
        row = res["labels"][label]
        e, u = row["edit"], row["unedited"]
        if label == "happy":
            ok = e["p"] >= smiles["p"] and e["top1"] >= 0.5
            # Against the real smiles of the same persons (the 0.53 is over all 35).
            rule = f"p >= same persons' real smiles {smiles['p']:.2f} and top-1 >= 50%"
        elif label in TOP1_LABELS:
            ok, rule = e["top1"] >= 0.5, "top-1 >= 50%"
        elif label in MEAN_P_LABELS:
            ok, rule = e["p"] >= MEAN_P_LABELS[label], f"p >= {MEAN_P_LABELS[label]}"
        else:
            ok, rule = None, "-"
        id_ok = row["identity"] <= real_id
        checks += [{"what": f"london {label}", "rule": rule, "ok": ok},
                   {"what": f"london {label} identity", "rule": f"<= real neutral-smile {real_id:.3f}",
                    "ok": id_ok}]
        no_face = f" ({e['no_face']} no face)" if e["no_face"] else ""
        lines.append(f"| {label} | {e['p']:.3f} | {e['top1']:.0%}{no_face} | {reads_as(e)} | {u['p']:.3f} "
                     f"| {u['top1']:.0%} "
                     f"| {row['identity']:.3f} ({mark(id_ok)}) | {rule} | {mark(ok)} | {second_cell(row)} |")
    un = res["unedited_neutral"]
    lines += ["", f"Real smiles (same persons): p(happy) {smiles['p']:.3f}, top-1 happy {smiles['top1']:.0%}; "
                  f"unedited neutral photos: p(happy) {res['unedited_happy']['p']:.3f}, "
                  f"top-1 neutral {un['top1']:.0%}; real neutral-smile identity distance {real_id:.3f} "
                  f"(dlib same-person threshold ~0.6). Second judge (a cross-check; no threshold): real "
                  f"smiles p(happy) {res['second_real_smiles']['p']:.3f}, top-1 happy "
                  f"{res['second_real_smiles']['top1']:.0%}; unedited neutral photos top-1 neutral "
                  f"{res['second_unedited_neutral']['top1']:.0%}."]
    if "happy_cosine" in res:
        c = res["happy_cosine"]
        ok = c["mean"] >= COSINE
        checks.append({"what": "london happy landmark cosine", "rule": f">= {COSINE}", "ok": ok})
        rig = res.get("rig_cosine")
        rig_text = (f"; rig's predicted displacement (london_smile.py): {rig['full_mean']:.3f} "
                    f"(mouth/cheeks {rig['mouth_cheeks_mean']:.3f})") if rig else ""
        lines.append(f"Happy edit landmark displacement vs real smile, cosine: mean {c['mean']:.3f} "
                     f"(min {c['min']:.3f}) >= {COSINE}: {mark(ok)}{rig_text}.")
    if "happy_eye_narrowing" in res:
        n = res["happy_eye_narrowing"]
        lines.append(f"Happy edit narrows the eyes by {n['edit']:.4f} eye-corner distances (median; the real "
                     f"smiles {n['real']:.4f}).")
    lines.append("Learned data: " + "; ".join(res["learned_data"]))
    return lines, checks


def grid_table(res: dict[str, Any], labels: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    lines = ["### GRID clips (default options)", "",
             "| clip | label | source p | edit p | rise (>= 0.3) | edit reads as | mouth r (>= 0.95) "
             "| jitter (<= 1.2) | px changed outside matte (0) | identity src-edit | result | second judge rise |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    checks = []
    for clip, rows in res.items():
        for label in labels:
            r = rows[label]
            # Editing toward neutral cannot raise p(neutral) on footage that already reads neutral.
            rise_ok = None if label == "neutral" else r["rise"] >= GRID_RISE
            ok_parts = [r["mouth_r"] >= MOUTH_R, r["jitter"] <= JITTER, r["changed_outside"] == 0]
            ok = all(ok_parts) and rise_ok is not False
            checks.append({"what": f"grid {clip} {label}", "rule": "rise, mouth r, jitter, 0 px", "ok": ok})
            lines.append(f"| {clip[5:]} | {label} | {r['source']['p']:.3f} | {r['edit']['p']:.3f} "
                         f"| {r['rise']:+.3f} ({mark(rise_ok)}) | {reads_as(r['edit'])} | {r['mouth_r']:.3f} "
                         f"| {r['jitter']:.2f} "
                         f"| {r['changed_outside']} | {r['identity']:.3f} | {mark(ok)} "
                         f"| {r['second']['rise']:+.3f} |")
    return lines, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", choices=("held-out", "all"), default="held-out",
                        help="London persons to edit: held-out (even ids, default) or all 35")
    parser.add_argument("--labels", default=",".join(EMOTIONS), help="comma-separated labels (default all 7)")
    parser.add_argument("--limit", type=int, help="edit only the first N London persons")
    parser.add_argument("--clips", help="comma-separated GRID clip names (default all three)")
    parser.add_argument("--no-london", action="store_true")
    parser.add_argument("--no-grid", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "emotion_reads.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--sheets", action=argparse.BooleanOptionalAction, default=None,
                        help="write docs/contact_sheet.png and docs/london_sheet.png (default: on a full run)")
    args = parser.parse_args(argv)
    labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    unknown = [x for x in labels if x not in EMOTIONS]
    if unknown:
        parser.error(f"unknown labels {unknown}; known: {', '.join(EMOTIONS)}")
    full = (set(labels) == set(EMOTIONS) and not args.limit and not args.clips
            and not args.no_london and not args.no_grid)
    if args.sheets is None:
        args.sheets = full
    judges.emotion_judge()  # fail early, before any editing, if the set-up step was not run
    second_judge.second_judge()
    judges.identity_judge()

    started = time.time()
    report: dict[str, Any] = {"labels": labels, "full_run": full}
    lines: list[str] = ["## Emotions that read (issue 9): benchmarks/emotion_reads.py", ""]
    checks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ned_emotion_reads_") as tmp:
        work = Path(tmp)
        if not args.no_london:
            print(f"London: persons {args.persons}", flush=True)
            report["london"] = run_london(args, labels, work)
            write_json(args.json, report)  # a partial result survives if the GRID part is stopped
            more, c = london_table(report["london"], labels)
            lines += more + [""]
            checks += c
        if not args.no_grid:
            print("GRID:", flush=True)
            report["grid"] = run_grid(args, labels, work)
            more, c = grid_table(report["grid"], labels)
            lines += more + [""]
            checks += c
    passed = sum(c["ok"] is True for c in checks)
    judged = sum(c["ok"] is not None for c in checks)
    lines.append(f"**{passed} of {judged} checks pass** ({'full run' if full else 'PARTIAL run: not the full set'}; "
                 f"{time.time() - started:.0f} s). The appearance stage's speed cost is measured by "
                 f"benchmarks/pipeline.py, not here.")
    report["checks"] = checks
    report["seconds"] = time.time() - started
    print("\n".join(lines))
    write_json(args.json, report)
    print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
