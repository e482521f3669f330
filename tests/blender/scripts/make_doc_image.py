"""Make docs/blender_sequencer.png: the sequencer's render of the demo clip before and after ned_blender's
result strip (real bpy, real engine), side by side with face close-ups. Run from the repository root:

    .venv/bin/python tests/blender/scripts/make_doc_image.py [--version 5.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import OpenImageIO as oiio
from OpenImageIO import ImageBufAlgo as algo

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.blender.conftest import run_in_blender  # noqa: E402
from tests.engine.helpers import EngineProcess  # noqa: E402

FACE = oiio.ROI(80, 230, 100, 270)  # the speaker's face in the demo clip (x0, x1, y0, y1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="5.0")
    parser.add_argument("--out", default=str(ROOT / "docs" / "blender_sequencer.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine = EngineProcess(folder / "engine", standin=False, roots=(str(folder), str(ROOT / "demo")))
        try:
            run = run_in_blender(args.version, "render_sequencer.py", "--address", engine.address, "--output",
                                 str(folder / "out"), "--before", str(folder / "before.png"), "--after",
                                 str(folder / "after.png"))
            print(run.stdout[-2000:], run.stderr[-2000:])
            if run.returncode:
                return run.returncode
        finally:
            engine.stop()
        before, after = oiio.ImageBuf(str(folder / "before.png")), oiio.ImageBuf(str(folder / "after.png"))
        scale = 2
        crops = [algo.resize(algo.cut(b, FACE), roi=oiio.ROI(0, FACE.width * scale, 0, FACE.height * scale))
                 for b in (before, after)]
        width = before.spec().width * 2 + crops[0].spec().width * 2 + 30
        height = max(before.spec().height, crops[0].spec().height)
        sheet = oiio.ImageBuf(oiio.ImageSpec(width, height, 3, "uint8"))
        algo.fill(sheet, (0.12, 0.12, 0.12))
        x = 0
        for image in (before, after, *crops):
            algo.paste(sheet, x, 0, 0, 0, algo.channels(image, (0, 1, 2)))
            x += image.spec().width + 10
        sheet.write(args.out)
        print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
