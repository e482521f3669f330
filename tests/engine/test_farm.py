"""Farm rendering with the real default backends on the demo clip: analyse once into a shared cache,
render chunks in separate processes, and get the same bytes as one run of the whole range."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import OpenImageIO as oiio
import pytest
from ned_engine import farm

from .helpers import GRID, ROOT


def ned_engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ned_engine.main", *args], capture_output=True, text=True,
                          timeout=300, cwd=str(ROOT))


def _job(tmp_path: Path, output: str) -> Path:
    spec = {"plate": str(GRID), "frame_range": [1001, 1010],
            "keys": [{"frame": 1001, "weights": {"neutral": 1.0}}, {"frame": 1008, "weights": {"happy": 1.0}}],
            "output": {"pattern": output}}
    path = tmp_path / f"{Path(output).parent.name}.json"
    path.write_text(json.dumps(spec))
    return path


def test_chunks_on_separate_nodes_equal_one_run(tmp_path):
    cache = str(tmp_path / "shared-cache")
    job = _job(tmp_path, str(tmp_path / "chunks" / "sh.####.exr"))
    analysed = ned_engine("analyze", str(job), "--cache-dir", cache, "-q")
    assert analysed.returncode == 0, analysed.stderr
    assert "analysis written to" in analysed.stdout
    again = ned_engine("analyze", str(job), "--cache-dir", cache, "-q")
    assert "analysis already in" in again.stdout
    nodes = [subprocess.Popen([sys.executable, "-m", "ned_engine.main", "render", str(job), "--frames", chunk,
                               "--cache-dir", cache, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=str(ROOT)) for chunk in ("1001-1004", "1005-1010")]
    for node, chunk in zip(nodes, ("1001-1004", "1005-1010"), strict=True):
        stdout, stderr = node.communicate(timeout=300)
        assert node.returncode == 0, stderr
        assert f"frames {chunk} to" in stdout and "(analysis from cache)" in stdout
    # one machine, the whole range, its own fresh analysis
    single = farm.load_job(str(_job(tmp_path, str(tmp_path / "single" / "sh.####.exr"))))
    result = farm.render(single, cache_dir=str(tmp_path / "own-cache"))
    assert sorted(result.written) == list(range(1001, 1011)) and not result.analysis_cached
    for frame in range(1001, 1011):
        chunked = (tmp_path / "chunks" / f"sh.{frame}.exr").read_bytes()
        assert chunked == (tmp_path / "single" / f"sh.{frame}.exr").read_bytes(), f"frame {frame} differs"
    # a video plate is written scene-linear by default
    header = _header(tmp_path / "chunks" / "sh.1001.exr")
    assert header.get_string_attribute("ned:colorspace") == "Linear Rec.709 (sRGB)"


def _header(path: Path) -> oiio.ImageSpec:
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    spec = image.spec()
    image.close()
    return spec


def test_a_farm_job_writes_the_output_colorspace_it_names(tmp_path):
    spec = farm.load_job(str(_job(tmp_path, str(tmp_path / "own" / "sh.####.exr"))))
    spec["frame_range"] = [1001, 1002]
    spec["output"]["colorspace"] = "sRGB Encoded Rec.709 (sRGB)"  # the plate's own encoding
    farm.render(spec, cache_dir=str(tmp_path / "cache"))
    header = _header(tmp_path / "own" / "sh.1001.exr")
    assert header.get_string_attribute("ned:colorspace") == "sRGB Encoded Rec.709 (sRGB)"
    assert header.get_string_attribute("ned:source_colorspace") == ""
    assert str(header.channelformat(0)) == "half"  # 8-bit codes, not converted: half keeps them


def test_farm_job_errors_are_one_line(tmp_path):
    (tmp_path / "bad.json").write_text('{"plate": "/x.####.exr", "emotion": "joyful", "output": {"pattern": "/o"}}')
    result = ned_engine("render", str(tmp_path / "bad.json"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("ned-engine: error: invalid_option:") and "spec.emotion" in result.stderr
    missing = ned_engine("analyze", str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "input_not_found" in missing.stderr
    job = _job(tmp_path, str(tmp_path / "o" / "sh.####.exr"))
    outside = ned_engine("render", str(job), "--frames", "990-1002")
    assert outside.returncode == 1 and "frame_range" in outside.stderr


@pytest.mark.parametrize("spec, field", [({"plate_frames": [1], "emotion": "happy", "output": {"pattern": "/o.#.exr"}},
                                          "spec.plate"),
                                         ({"plate": "/p.#.exr", "emotion": "happy", "output": {"inline": True}},
                                          "spec.output.pattern")])
def test_farm_jobs_need_paths(tmp_path, spec, field):
    (tmp_path / "job.json").write_text(json.dumps(spec))
    with pytest.raises(Exception) as error:
        farm.load_job(str(tmp_path / "job.json"))
    assert error.value.field == field
