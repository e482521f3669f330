"""The faster frame path writes the same pixels as the straightforward one it replaced.

``reference_frame`` and ``reference_write`` are the frame assembly and EXR writer as they were before the
speed work (full-frame meshgrid STMap, numpy RGBA, one mixed half/float part): every output frame of
``Pipeline.run`` must carry the same channels, in the same order, with the same stored formats, windows
and pixel bytes, only laid out as one part per layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from test_pipeline import LOST, FakeManipulator, FakeModeller, FakeTracker

from ned_core.cache import AnalysisCache
from ned_core.io import frame_path
from ned_core.io.colour import check_colorspace, interop_id, output_colorspace, to_output
from ned_core.io.exr import _set_attribute
from ned_core.io.plate import carried_attribute
from ned_core.keyframes import EmotionCurve
from ned_core.pipeline import (
    MATTE_LAYER,
    STMAP_LAYERS,
    OutputSpec,
    Pipeline,
    Shot,
    _output_half,
    open_mask,
    open_plate,
    read_mask,
)
from ned_core.render.base import FrameFace

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo" / "grid_bbaf2n.mpg"


def reference_frame(pipeline, image, index, analysis, edited, mask, weights):
    """(rgba, matte, stmap_uv) of one frame as ``Pipeline.render_frame`` computed them before."""
    pixels = image.pixels
    height, width = pixels.shape[:2]
    rgb = pixels[..., :3]
    alpha = image.alpha if image.alpha is not None else np.ones(rgb.shape[:2], np.float32)
    rgba = np.ascontiguousarray(np.concatenate([rgb, alpha[..., None]], axis=-1), dtype=np.float32)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))

    def stmap_uv(stmap):
        dx, dy, _, _ = image.info.data_window
        fx, fy, fw, fh = image.info.display_window
        u = (stmap[..., 0] + (dx - fx) + 0.5) / fw
        v = 1.0 - (stmap[..., 1] + (dy - fy) + 0.5) / fh
        return np.stack([u, v], axis=-1).astype(np.float32)

    fit = analysis.fit
    if not fit.found[index]:
        return rgba, np.zeros((height, width), np.float32), stmap_uv(np.stack([xs, ys], -1))
    source = fit.to_image(index, fit.local_shape(index))
    target = fit.to_image(index, fit.local_shape(index, edited[index]))
    face = FrameFace(source=source, edited=target, triangles=fit.triangles, fit=fit, index=index,
                     edited_expression=edited[index], edited_sequence=edited, colorspace=image.colorspace,
                     weights=np.asarray(weights)[None])
    rendered = pipeline.stage("render").render(rgba, face)
    rendered = pipeline.stage("appearance").apply(rgba, rendered, face)
    out, matte = pipeline.stage("composite").composite(rgba, rendered, mask)
    stmap = rendered.stmap if rendered.stmap is not None else np.stack([xs, ys], -1)
    return out, matte.astype(np.float32), stmap_uv(stmap)


def reference_write(path, rgba, like, layers, compression, half, colorspace, convert_from):
    """The EXR writer before the speed work: one part, RGBA half (or float) then float layers."""
    rgba = to_output(rgba, check_colorspace(convert_from), check_colorspace(colorspace))
    height, width, channels = rgba.shape
    names = list("RGBA"[:channels]) + list(layers)
    pixels = np.concatenate([np.asarray(rgba, np.float32)] + [v[..., None] for v in layers.values()], axis=-1)
    rgba_type = oiio.TypeDesc("half" if half else "float")
    spec = oiio.ImageSpec(width, height, len(names), rgba_type)
    spec.channelnames = tuple(names)
    spec.channelformats = (rgba_type,) * channels + (oiio.TypeDesc("float"),) * len(layers)
    spec.alpha_channel = 3
    spec.x, spec.y = like.data_window[0], like.data_window[1]
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = like.display_window
    spec.attribute("PixelAspectRatio", float(like.pixel_aspect))
    for name, value in like.metadata.items():
        if carried_attribute(name):
            _set_attribute(spec, name, value, like.metadata_types.get(name))
    spec.attribute("DateTime", "")
    spec.attribute("compression", compression)
    canonical = check_colorspace(colorspace)
    spec.attribute("ned:colorspace", canonical)
    if interop_id(canonical):
        spec.attribute("colorInteropID", interop_id(canonical))
    output = oiio.ImageOutput.create("openexr")
    assert output.open(str(path), spec), output.geterror()
    assert output.write_image(np.ascontiguousarray(pixels)), output.geterror()
    assert output.close()


def reference_run(pipeline, shot, curve, output, directory):
    """Every frame of ``shot`` through the reference path, written to ``directory`` (same names)."""
    with open_plate(shot) as plate:
        mask_plate = open_mask(shot, plate)
        analysis, _ = pipeline.analyze(shot, plate)
        weights = curve.weights(analysis.frames)
        edited = pipeline.stage("manipulate").edit(analysis.fit, weights, mouth_preservation=1.0)
        space = output_colorspace(plate.colorspace, output.colorspace)
        for index, frame in enumerate(plate.frames):
            image = plate.read(frame)
            mask = read_mask(mask_plate, frame, image) if mask_plate is not None else None
            rgba, matte, uv = reference_frame(pipeline, image, index, analysis, edited, mask, weights[index])
            layers = {MATTE_LAYER: matte, STMAP_LAYERS[0]: uv[..., 0], STMAP_LAYERS[1]: uv[..., 1]}
            reference_write(directory / Path(frame_path(output.pattern, frame)).name, rgba, image.info, layers,
                            output.compression, _output_half(output, image, space), space, image.colorspace)
        if mask_plate is not None:
            mask_plate.close()


def stored(path: Path) -> tuple[list[tuple[str, str]], tuple[int, ...], dict[str, bytes]]:
    """([(channel, stored format)] over all parts in order, windows, {channel: stored pixel bytes})."""
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    channels, windows, data = [], set(), {}
    part = 0
    while part == 0 or image.seek_subimage(part, 0):
        spec = image.spec()
        windows.add((spec.x, spec.y, spec.width, spec.height, spec.full_x, spec.full_y, spec.full_width,
                     spec.full_height))
        for c, name in enumerate(spec.channelnames):
            fmt = spec.channelformat(c)
            channels.append((name, str(fmt)))
            data[name] = image.read_image(part, 0, c, c + 1, fmt).tobytes()
        part += 1
    image.close()
    assert len(windows) == 1
    return channels, windows.pop(), data


def assert_same_frames(ours: list[str], reference: Path) -> None:
    for path in ours:
        got, want = stored(Path(path)), stored(reference / Path(path).name)
        assert got[0] == want[0], "channels or stored formats differ"
        assert got[1] == want[1], "windows differ"
        for name in want[2]:
            assert got[2][name] == want[2][name], f"{Path(path).name}: {name} pixels differ"


def test_real_footage_frames_equal_the_reference_path(tmp_path: Path) -> None:
    """The default stages (appearance included) on the demo clip, display-referred: RGBA converted."""
    pipeline = Pipeline(cache=AnalysisCache(tmp_path / "cache"))
    shot = Shot(str(DEMO), frame_range=(1001, 1004))
    curve = EmotionCurve.parse_emotion("happy")
    output = OutputSpec(str(tmp_path / "new" / "e.####.exr"))
    result = pipeline.run(shot, curve, output)
    (tmp_path / "ref").mkdir()
    reference_run(pipeline, shot, curve, output, tmp_path / "ref")
    assert sorted(result.written) == [1001, 1002, 1003, 1004]
    assert_same_frames([result.written[f] for f in sorted(result.written)], tmp_path / "ref")
    channels = stored(Path(result.written[1001]))[0]
    # An 8-bit video linearised to Linear Rec.709 keeps every code in half RGBA (README); the layers are
    # always float, each in a part of its own.
    assert channels == [("R", "half"), ("G", "half"), ("B", "half"), ("A", "half"), ("ned.matte", "float"),
                        ("stmap.u", "float"), ("stmap.v", "float")]


@pytest.mark.parametrize("half", [True, False])
def test_alpha_offset_window_mask_and_lost_frame_equal_the_reference_path(tmp_path: Path, half: bool) -> None:
    """A plate with alpha and a data window inside a larger display window, a user mask, a lost frame."""
    rng = np.random.default_rng(3)
    frames = range(1001, 1005)
    width, height = 160, 120
    for frame in frames:
        pixels = (rng.random((height, width, 4)) * 3 - 0.5).astype(np.float32)
        pixels[..., 3] = rng.random((height, width)) > 0.2
        spec = oiio.ImageSpec(width, height, 4, "half")
        spec.x, spec.y, spec.full_width, spec.full_height = 8, 4, 176, 136
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create("openexr")
        out.open(str(tmp_path / f"p.{frame}.exr"), spec)
        out.write_image(pixels)
        out.close()
        mask = np.clip(rng.random((height, width)) * 2 - 0.3, 0, 1).astype(np.float32)[..., None]
        spec = oiio.ImageSpec(width, height, 1, "half")
        spec.channelnames = ("A",)
        spec.x, spec.y, spec.full_width, spec.full_height = 8, 4, 176, 136
        out = oiio.ImageOutput.create("openexr")
        out.open(str(tmp_path / f"m.{frame}.exr"), spec)
        out.write_image(mask)
        out.close()
    stages = {"track": FakeTracker(), "face3d": FakeModeller(), "manipulate": FakeManipulator()}
    pipeline = Pipeline(cache=AnalysisCache(tmp_path / "cache"), stages=stages)
    shot = Shot(str(tmp_path / "p.####.exr"), mask=str(tmp_path / "m.####.exr"))
    curve = EmotionCurve.parse_emotion("happy")
    output = OutputSpec(str(tmp_path / "new" / "e.####.exr"), half=half, compression="piz")
    result = pipeline.run(shot, curve, output)
    assert result.lost_frames == [LOST]
    (tmp_path / "ref").mkdir()
    reference_run(pipeline, shot, curve, output, tmp_path / "ref")
    assert_same_frames([result.written[f] for f in frames], tmp_path / "ref")


def test_writer_reports_in_frame_order_and_nothing_after_a_failed_write(tmp_path: Path) -> None:
    from ned_core.errors import OutputError
    from ned_core.pipeline import _FrameWriter

    rgba = np.random.default_rng(4).random((24, 32, 4)).astype(np.float32)
    (tmp_path / "f.3.exr").mkdir()  # frame 3 cannot be renamed into place
    finished: list[int] = []
    with pytest.raises(OutputError), _FrameWriter(lambda frame, path: finished.append(frame)) as writer:
        for frame in range(1, 7):
            writer.write(frame, str(tmp_path / f"f.{frame}.exr"), rgba, layers={"ned.matte": rgba[..., 0]})
    assert finished == [1, 2]  # in order, and none after the failure, though frame 4 was in flight
    assert not any((tmp_path / f"f.{frame}.exr").exists() for frame in (5, 6))  # none started after it


def test_reader_reads_ahead_in_order_and_raises_at_the_frame_that_failed() -> None:
    from ned_core.pipeline import _FrameReader

    seen: list[int] = []

    def read(frame: int) -> int:
        seen.append(frame)
        if frame == 3:
            raise ValueError("frame 3 is broken")
        return frame * 10

    with _FrameReader(read, [1, 2, 3, 4]) as reader:
        assert [reader.next(), reader.next()] == [10, 20]
        with pytest.raises(ValueError, match="frame 3"):
            reader.next()
    assert seen == [1, 2, 3]  # nothing read past the failure


def test_reader_with_two_threads_hands_frames_out_in_order() -> None:
    import threading
    import time

    from ned_core.pipeline import _FrameReader

    names: set[str] = set()

    def read(frame: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(0.01 * (frame % 3))  # finish out of order
        return frame

    with _FrameReader(read, list(range(20)), threads=2, ahead=4) as reader:
        assert [reader.next() for _ in range(20)] == list(range(20))
        with pytest.raises(StopIteration):
            reader.next()
    assert len(names) == 2


def test_kept_frames_come_back_exactly_within_their_budget() -> None:
    from ned_core.io.plate import ImageInfo, PlateImage
    from ned_core.pipeline import KeptFrames

    rng = np.random.default_rng(5)
    info = ImageInfo(32, 16, (0, 0, 32, 16), (0, 0, 32, 16), source_format="half", source_bits=16)
    halves = [rng.normal(size=(16, 32, 3)).astype(np.float16).astype(np.float32) for _ in range(3)]
    halves[1][0, 0] = np.nan
    kept = KeptFrames([1, 2, 3], budget=2 * halves[0].astype(np.float16).nbytes)
    for frame, pixels in zip((1, 2, 3), halves, strict=True):
        kept.put(PlateImage(frame, pixels, ("R", "G", "B"), info, "lin_rec709_scene"))
    kept.put(PlateImage(4, halves[0], ("R", "G", "B"), info, "lin_rec709_scene"))  # not a frame to render
    for frame in (1, 2):  # kept as half, back as the very same float32 bits
        image = kept.take(frame)
        assert image is not None and image.pixels.dtype == np.float32 and image.pixels.shape == (16, 32, 3)
        assert image.pixels.tobytes() == halves[frame - 1].tobytes()
    assert kept.take(3) is None and kept.take(4) is None  # over the budget; never wanted
    # values a half cannot hold (a file with float channels among half ones) stay float32
    floats = rng.normal(size=(16, 32, 3)).astype(np.float32)
    roomy = KeptFrames([7], budget=1 << 20)
    roomy.put(PlateImage(7, floats, ("R", "G", "B"), info, "lin_rec709_scene"))
    back = roomy.take(7)
    assert back is not None and back.pixels is floats


def test_a_cold_run_reads_each_frame_once(tmp_path: Path) -> None:
    """The analysis keeps the frames it read for the render pass (within the budget)."""
    from unittest import mock

    from ned_core.io import Plate

    stages = {"track": FakeTracker(), "face3d": FakeModeller(), "manipulate": FakeManipulator()}
    pipeline = Pipeline(cache=AnalysisCache(tmp_path / "cache"), stages=stages)
    shot = Shot(str(DEMO), frame_range=(1001, 1006))
    reads: list[int] = []
    original = Plate.read

    def counting(self: Plate, frame: int):  # noqa: ANN202
        reads.append(frame)
        return original(self, frame)

    with mock.patch.object(Plate, "read", counting):
        result = pipeline.run(shot, EmotionCurve.parse_emotion("happy"), OutputSpec(str(tmp_path / "e.####.exr")))
    assert sorted(result.written) == list(range(1001, 1007))
    assert sorted(reads) == list(range(1001, 1007))
