"""Does the FACS rig's happy edit move a face toward that person's real smile? (London Set, held-out persons)

The rig is calibrated here on the fixed split's fit half (odd ids; the shipped file uses all 35). For
every person that calibration did not use (even ids), the rig's happy edit (intensity 1, speech kept)
of the neutral photo is compared with the real smile of the same person (smiling photo aligned onto the
neutral one on the stable points, in face-local units): cosine similarity of the two displacement fields
over all 478x3 coordinates, over the mouth and cheeks only, and over x/y only (what an image warp shows).

The real smiles often open the mouth (teeth); the rig keeps the mouth opening by design, so that part of a
real smile is never predicted. The "closed" line restricts to persons whose real smile left the mouth
(nearly) as open as it was.

Run: ``python benchmarks/london_smile.py [--data DIR] [--json FILE]`` (needs mediapipe, the track extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ned_core.manipulate import calibrate
from ned_core.manipulate.facs import FacsRig
from ned_core.model_files import save_arrays

CLOSED_MOUTH = 0.01  # inner-lip opening change (face-local units) below which a smile counts as closed


def evaluate(data: Path) -> dict:
    """Per-person and summary cosines of the rig's happy edit vs the real smile on held-out persons."""
    fit_half, held_out = calibrate.split_persons(calibrate.person_ids(data))
    with tempfile.TemporaryDirectory() as tmp:
        fitted = save_arrays(calibrate.calibrate(calibrate.load_pairs(data, fit_half)), Path(tmp) / "facs_smile.npz")
        rig = FacsRig(calibration=str(fitted))
    pairs = calibrate.load_pairs(data, held_out)
    region = calibrate.mouth_cheek_vertices(rig.template)
    rows = []
    for pid, (neutral_px, smiling_px) in pairs.items():
        neutral, real = calibrate.smile_displacement(neutral_px, smiling_px)
        predicted = calibrate.happy_prediction(rig, neutral_px)
        rows.append({
            "person": pid,
            "opening_change": calibrate.inner_opening(neutral + real) - calibrate.inner_opening(neutral),
            "cosine_full": calibrate.cosine(predicted, real),
            "cosine_mouth_cheeks": calibrate.cosine(predicted[region], real[region]),
            "cosine_xy": calibrate.cosine(predicted[:, :2], real[:, :2]),
        })
    summary = {}
    for key in ("cosine_full", "cosine_mouth_cheeks", "cosine_xy"):
        values = np.array([r[key] for r in rows])
        closed = np.array([r[key] for r in rows if abs(r["opening_change"]) < CLOSED_MOUTH])
        summary[key] = {"mean": float(values.mean()), "min": float(values.min()),
                        "closed_mean": float(closed.mean()) if len(closed) else None}
    return {"persons": rows, "summary": summary, "n_closed": int(sum(
        abs(r["opening_change"]) < CLOSED_MOUTH for r in rows))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=calibrate.DEFAULT_DATA, help="London Set folder")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = evaluate(args.data)
    print(f"{'person':>6} {'opening':>8} {'full':>6} {'mouth':>6} {'xy':>6}")
    for r in result["persons"]:
        print(f"{r['person']:>6} {r['opening_change']:8.3f} {r['cosine_full']:6.3f} "
              f"{r['cosine_mouth_cheeks']:6.3f} {r['cosine_xy']:6.3f}")
    n = len(result["persons"])
    for key, label in (("cosine_full", "all 478x3"), ("cosine_mouth_cheeks", "mouth/cheeks"),
                       ("cosine_xy", "x/y only")):
        s = result["summary"][key]
        closed = "n/a" if s["closed_mean"] is None else f"{s['closed_mean']:.3f}"
        print(f"{label:>13}: mean {s['mean']:.3f}  min {s['min']:.3f}  "
              f"(closed-mouth smiles, {result['n_closed']} of {n}: mean {closed})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
