"""The ``ned`` command line as a user runs it: bad input gives one clear line, a code and no output."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from ned_core.io import Plate, read_exr_channels

GRID = Path(__file__).resolve().parents[2] / "demo" / "grid_bbaf2n.mpg"


def ned(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ned_engine.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def _write(path: Path, pixels: np.ndarray) -> None:
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], "half")
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec)
    out.write_image(pixels)
    out.close()


@pytest.fixture
def grey_plate(tmp_path) -> str:
    for f in (1001, 1002, 1003):
        _write(tmp_path / f"grey.{f}.exr", np.full((64, 80, 3), 0.18, np.float32))
    return str(tmp_path / "grey.####.exr")


def test_version():
    result = ned("--version")
    assert result.returncode == 0 and result.stdout.startswith("ned ")


def _fails(result, code: str, *names: str) -> None:
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ned: error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0] == result.stderr.strip().splitlines()[-1]  # progress lines may come before it
    assert errors[0].startswith(f"ned: error: {code}:"), errors[0]
    for name in names:
        assert name in errors[0]


def test_missing_file(tmp_path):
    _fails(ned("edit", str(tmp_path / "nope.mov"), "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy"),
           "input_not_found", "nope.mov")
    assert not list(tmp_path.iterdir())


def test_pattern_with_no_match(tmp_path):
    _fails(ned("edit", str(tmp_path / "none.####.exr"), "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy"),
           "input_not_found", "none.####.exr")


def test_range_outside_the_plate(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy", "--frames", "990-1002"),
           "frame_range")
    assert not list(tmp_path.glob("o.*"))


def test_malformed_range(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy", "--frames", "a-b"),
           "frame_range", "a-b")


def test_corrupt_exr(tmp_path, grey_plate):
    good = Path(grey_plate.replace("####", "1002"))
    good.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    result = ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy")
    _fails(result, "corrupt_image", "grey.1002.exr")
    assert not list(tmp_path.glob("o.*"))


def test_unknown_emotion_and_backend(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "joyful"),
           "invalid_option", "joyful")
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy", "--backend", "magic"),
           "unknown_backend", "magic")


def test_output_pattern_needs_a_frame_token(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.exr"), "--emotion", "happy"), "invalid_option", "--output")


def test_clip_with_no_face(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy", "--no-cache"),
           "no_face", "grey.####.exr")
    assert not list(tmp_path.glob("o.*"))


def test_info_on_the_demo_clip():
    result = ned("info", str(GRID))
    assert result.returncode == 0, result.stderr
    assert "1001-1075 (75 frames)" in result.stdout
    assert "360x288" in result.stdout
    assert "faces at 1001: 1" in result.stdout
    assert "colorspace: sRGB Encoded Rec.709 (sRGB)" in result.stdout
    assert "output:     Linear Rec.709 (sRGB) (converted from sRGB Encoded Rec.709 (sRGB); RGBA half)" in result.stdout
    own = ned("info", str(GRID), "--output-colorspace", "srgb_tx")
    assert "output:     sRGB Encoded Rec.709 (sRGB) (the plate's own; RGBA half)" in own.stdout, own.stderr


def test_an_unknown_output_colorspace_is_refused_before_any_work(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy",
               "--output-colorspace", "Rec709-ish"), "invalid_option", "Rec709-ish")
    assert not list(tmp_path.glob("o.*"))


def test_edit_the_demo_clip_with_keys_and_preview(tmp_path):
    args = ["edit", str(GRID), "-o", str(tmp_path / "out" / "shot.####.exr"), "--frames", "1001-1010",
            "--key", "1001:neutral=1", "--key", "1010:happy=1", "--preview", str(tmp_path / "preview.mp4"),
            "--cache-dir", str(tmp_path / "cache")]
    first = ned(*args)
    assert first.returncode == 0, first.stderr
    assert "wrote 10 frames 1001-1010" in first.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"shot.{f}.exr" for f in range(1001, 1011)]
    import av

    with av.open(str(tmp_path / "preview.mp4")) as movie:
        video = movie.streams.video[0]
        assert video.codec_context.width == 720 and len(movie.streams.audio) == 1
    again = ned(*[a.replace("happy", "sad") for a in args])  # another emotion: the analysis is reused
    assert again.returncode == 0 and "analysis from cache" in again.stdout


def test_never_overwrites_its_own_inputs(tmp_path, grey_plate):
    before = Path(grey_plate.replace("####", "1002")).read_bytes()
    _fails(ned("edit", grey_plate, "-o", grey_plate, "--emotion", "happy"), "invalid_option", "overwrite")
    assert Path(grey_plate.replace("####", "1002")).read_bytes() == before
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy",
               "--preview", grey_plate.replace("####", "1001")), "invalid_option", "--preview")


def test_output_and_preview_formats_are_checked(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.png"), "--emotion", "happy"),
           "invalid_option", "--output")
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy",
               "--preview", str(tmp_path / "p.gif")), "invalid_option", "--preview")


def test_a_bad_backend_option_is_one_clear_line(tmp_path, grey_plate):
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy",
               "--option", "track.bogus=1"), "invalid_option", "bogus")
    _fails(ned("edit", grey_plate, "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy",
               "--option", "nonsense"), "invalid_option", "--option")


def test_float_plates_get_float_rgba_so_the_plate_survives(tmp_path):
    """Intensity 0 on a 32-bit float plate is bit-identical without asking for --float."""
    rng = np.random.default_rng(3)
    frames = (1001, 1002)
    for f in frames:
        spec = oiio.ImageSpec(360, 288, 3, "float")
        out = oiio.ImageOutput.create(str(tmp_path / f"f.{f}.exr"))
        out.open(str(tmp_path / f"f.{f}.exr"), spec)
        with Plate.open(str(GRID), frame_range=(f, f)) as movie:
            base = movie.read(f).pixels[..., :3]
        out.write_image((base + rng.normal(0, 1e-4, base.shape)).astype(np.float32))
        out.close()
    result = ned("edit", str(tmp_path / "f.####.exr"), "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy:0",
                 "--no-cache", "-q")
    assert result.returncode == 0, result.stderr
    for f in frames:
        got = read_exr_channels(str(tmp_path / f"o.{f}.exr"))
        src = oiio.ImageBuf(str(tmp_path / f"f.{f}.exr")).get_pixels(oiio.FLOAT)
        assert np.array_equal(np.stack([got["R"], got["G"], got["B"]], -1), src)
