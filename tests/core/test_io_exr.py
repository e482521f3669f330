"""Writing EXR frames: what a source frame's header carries into the output, layers, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from io_fixtures import SITE_CONFIG, gradient, header, truncate, write_image

from ned_core.errors import CorruptImageError, InputNotFoundError, InvalidOptionError, OutputError
from ned_core.io import COMPRESSIONS, ImageInfo, Plate, read_exr_channels, write_exr


@pytest.fixture(autouse=True)
def _builtin_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A half-float plate frame with everything a real one carries: windows, aspect, typed metadata."""
    return Path(write_image(
        tmp_path / "src" / "plate.1001.exr", gradient(64, 36, 4), "half", data_window=(16, 8),
        display_window=(0, 0, 96, 54), attributes={
            "PixelAspectRatio": 2.0, "camera:name": "A-cam", "shot:take": 3, "compression": "piz",
            "Copyright": "plates dept"},  # EXR's standard "owner"
        typed_attributes={"smpte:TimeCode": ("timecode", (0x01020304, 0)),
                          "worldToCamera": ("matrix", tuple(float(i) for i in range(16))),
                          "chromaticities": ("float[8]", (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329)),
                          "FramesPerSecond": ("rational", (24, 1))}))


def parts(path: Path) -> list[tuple[str, tuple[str, ...], str]]:
    """(part name, channel names, the one format) of every part of an EXR, checking shared windows."""
    image = oiio.ImageInput.open(str(path))
    found = []
    index = 0
    while index == 0 or image.seek_subimage(index, 0):
        spec = image.spec()
        assert not spec.channelformats  # one format per part
        found.append((spec.get_string_attribute("name"), spec.channelnames, str(spec.format),
                      (spec.x, spec.y, spec.width, spec.height, spec.full_x, spec.full_y, spec.full_width)))
        index += 1
    image.close()
    assert len({windows for *_, windows in found}) == 1
    return [(name, channels, fmt) for name, channels, fmt, _ in found]


def _no_leftovers(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"] == []


def test_write_keeps_the_source_header_and_types_channels(tmp_path: Path, source: Path) -> None:
    with Plate.open(str(source)) as plate:
        image = plate.read(1001)
    rgba = image.pixels.copy()
    rgba[10:20, 10:30, 0] = 0.25
    matte = np.zeros(rgba.shape[:2], np.float32)
    matte[5:25, 5:40] = 1.0
    u = np.random.default_rng(0).uniform(0, 1, rgba.shape[:2]).astype(np.float32)  # needs float precision
    out = tmp_path / "out" / "deep" / "edit.1001.exr"  # missing directories are created
    write_exr(str(out), rgba, like=image.info, layers={"ned.matte": matte, "stmap.u": u, "stmap.v": 1 - u},
              colorspace=image.colorspace)
    spec = header(out)
    assert (spec.x, spec.y, spec.width, spec.height) == (16, 8, 64, 36)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, 96, 54)
    assert spec.get_float_attribute("PixelAspectRatio") == 2.0
    assert spec.get_string_attribute("camera:name") == "A-cam"
    assert spec.get_int_attribute("shot:take") == 3
    assert spec.get_string_attribute("Copyright") == "plates dept"
    attributes = {a.name: (str(a.type), a.value) for a in spec.extra_attribs}
    assert attributes["smpte:TimeCode"] == ("timecode", (0x01020304, 0))
    assert attributes["worldToCamera"] == ("matrix", tuple(float(i) for i in range(16)))
    assert attributes["chromaticities"][0] == "float[8]"
    assert attributes["FramesPerSecond"] == ("rational", (24, 1))
    assert spec.get_string_attribute("compression") == "zip"  # the output's, not the source's piz
    assert spec.get_string_attribute("ned:colorspace") == "ACEScg"
    assert spec.get_string_attribute("colorInteropID") == "lin_ap1_scene"
    # One part per layer, one format per part, every part over the same windows (see exr.py).
    assert parts(out) == [("rgba", ("R", "G", "B", "A"), "half"), ("ned", ("ned.matte",), "float"),
                          ("stmap", ("stmap.u", "stmap.v"), "float")]
    channels = read_exr_channels(str(out))
    for i, name in enumerate("RGBA"):
        np.testing.assert_array_equal(channels[name], rgba[..., i])  # source was half: exact
    np.testing.assert_array_equal(channels["ned.matte"], matte)
    np.testing.assert_array_equal(channels["stmap.u"], u)
    np.testing.assert_array_equal(channels["stmap.v"], 1 - u)
    _no_leftovers(out.parent)
    with Plate.open(str(out)) as again:  # our own output reads back as the same plate
        back = again.read(1001)
    assert again.colorspace == "ACEScg" and back.info.data_window == image.info.data_window
    assert back.info.metadata["camera:name"] == "A-cam"


def test_output_bytes_depend_only_on_the_inputs(tmp_path: Path, source: Path) -> None:
    with Plate.open(str(source)) as plate:
        image = plate.read(1001)
    for name in ("a.exr", "b.exr"):
        write_exr(str(tmp_path / name), image.pixels, like=image.info, colorspace=image.colorspace,
                  layers={"ned.matte": image.pixels[..., 0]})
    assert (tmp_path / "a.exr").read_bytes() == (tmp_path / "b.exr").read_bytes()
    assert header(tmp_path / "a.exr").get_string_attribute("DateTime") == ""


def test_float_rgba_and_no_like(tmp_path: Path) -> None:
    rgba = np.random.default_rng(1).uniform(-1, 40, size=(12, 20, 4)).astype(np.float32)
    write_exr(str(tmp_path / "f.exr"), rgba, half=False)
    spec = header(tmp_path / "f.exr")
    assert str(spec.format) == "float" and spec.channelnames == ("R", "G", "B", "A")
    assert (spec.x, spec.y, spec.full_width, spec.full_height) == (0, 0, 20, 12)
    assert spec.get_string_attribute("ned:colorspace") == ""
    got = read_exr_channels(str(tmp_path / "f.exr"))
    np.testing.assert_array_equal(np.stack([got[c] for c in "RGBA"], -1), rgba)


def test_half_rounds_like_half(tmp_path: Path) -> None:
    rgba = np.random.default_rng(2).uniform(0, 2, size=(8, 8, 4)).astype(np.float32)
    write_exr(str(tmp_path / "h.exr"), rgba)
    got = read_exr_channels(str(tmp_path / "h.exr"))
    np.testing.assert_array_equal(got["G"], rgba[..., 1].astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("compression", [*COMPRESSIONS, "dwaa:45", "zip:9"])
def test_every_compression(tmp_path: Path, compression: str) -> None:
    rgba = gradient(32, 16, 4)
    write_exr(str(tmp_path / "c.exr"), rgba, compression=compression)
    assert header(tmp_path / "c.exr").get_string_attribute("compression") == compression.split(":")[0]
    got = read_exr_channels(str(tmp_path / "c.exr"))
    lossy = compression.startswith(("dwa", "b44", "pxr24"))
    np.testing.assert_allclose(got["R"], rgba[..., 0], atol=0.02 if lossy else 1e-3)


@pytest.mark.parametrize("compression", ["lzma", "zip:fast", "ZIP", ""])
def test_bad_compression(tmp_path: Path, compression: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        write_exr(str(tmp_path / "c.exr"), gradient(4, 4), compression=compression)
    assert caught.value.field == "compression" and "\n" not in str(caught.value)
    assert not (tmp_path / "c.exr").exists()


def test_bad_colorspace_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        write_exr(str(tmp_path / "c.exr"), gradient(4, 4), colorspace="srgb_rec709")
    assert caught.value.field == "colorspace"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("colorspace", "interop"), [
    ("Linear Rec.709 (sRGB)", "lin_rec709_scene"), ("ACEScct", "ocio:acescct_ap1_scene"),
    ("ARRI LogC3 (EI800)", "ocio:arrilogc3_awg3_scene")])
def test_colorspace_round_trips_through_the_header(tmp_path: Path, colorspace: str,
                                                   interop: str | None) -> None:
    path = str(tmp_path / "c.exr")
    write_exr(path, gradient(8, 4), colorspace=colorspace)
    assert (header(path).get_string_attribute("colorInteropID") or None) == interop
    with Plate.open(path) as plate:
        assert plate.colorspace == colorspace


def test_convert_from_converts_rgb_only_and_names_both_colourspaces(tmp_path: Path) -> None:
    from ned_core.io.colour import to_output

    rgba = gradient(16, 8, 4)
    before = rgba.copy()
    matte = np.linspace(0, 1, 128, dtype=np.float32).reshape(8, 16)
    path = str(tmp_path / "c.exr")
    write_exr(path, rgba, layers={"ned.matte": matte}, half=False, colorspace="ACEScg",
              convert_from="sRGB Encoded Rec.709 (sRGB)")
    np.testing.assert_array_equal(rgba, before)  # the caller's frame is left as it is
    spec = header(path)
    assert spec.get_string_attribute("ned:colorspace") == "ACEScg"
    assert spec.get_string_attribute("ned:source_colorspace") == "sRGB Encoded Rec.709 (sRGB)"
    channels = read_exr_channels(path)
    expected = to_output(rgba, "sRGB Encoded Rec.709 (sRGB)", "ACEScg")
    for i, name in enumerate("RGBA"):
        np.testing.assert_array_equal(channels[name], expected[..., i])
    np.testing.assert_array_equal(channels["A"], rgba[..., 3])
    np.testing.assert_array_equal(channels["ned.matte"], matte)  # layers are data: never converted
    with Plate.open(path) as plate:  # read back as what it now is; the source's name is not carried
        assert plate.colorspace == "ACEScg" and "ned:source_colorspace" not in plate.read(1001).info.metadata
    with pytest.raises(OutputError):
        write_exr(str(tmp_path / "d.exr"), rgba, convert_from="ACEScg")  # to what?
    assert not (tmp_path / "d.exr").exists()


def test_site_config_colourspace_without_interop_id(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "site.ocio"
    config.write_text(SITE_CONFIG)
    monkeypatch.setenv("OCIO", str(config))
    path = str(tmp_path / "c.exr")
    write_exr(path, gradient(8, 4), colorspace="plate_log")
    assert header(path).get_string_attribute("colorInteropID") == ""
    assert header(path).get_string_attribute("ned:colorspace") == "plate_log"
    with Plate.open(path) as plate:
        assert plate.colorspace == "plate_log"
    write_exr(path, gradient(8, 4))
    with Plate.open(path) as plate:
        assert plate.colorspace == "linear"  # the site config's scene_linear role


def test_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"I am a file")
    target = tmp_path / "blocker" / "out.1001.exr"
    with pytest.raises(OutputError) as caught:
        write_exr(str(target), gradient(8, 4))
    assert str(target) in str(caught.value) and "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_failed_write_leaves_no_temp_and_keeps_the_old_frame(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.1001.exr"
    write_exr(str(path), gradient(8, 4, seed=1))
    before = path.read_bytes()

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError) as caught:
        write_exr(str(path), gradient(8, 4, seed=2))
    assert "No space left" in str(caught.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.1001.exr"]


def test_unwritable_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError):
            write_exr(str(locked / "o.exr"), gradient(8, 4))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_shape_mismatches(tmp_path: Path) -> None:
    info = ImageInfo(8, 4, (0, 0, 8, 4), (0, 0, 8, 4))
    with pytest.raises(OutputError):
        write_exr(str(tmp_path / "a.exr"), gradient(9, 4), like=info)
    with pytest.raises(OutputError):
        write_exr(str(tmp_path / "a.exr"), gradient(8, 4), layers={"ned.matte": np.zeros((3, 8), np.float32)})
    with pytest.raises(OutputError):
        write_exr(str(tmp_path / "a.exr"), gradient(8, 4), layers={"A": np.zeros((4, 8), np.float32)})
    with pytest.raises(OutputError):
        write_exr(str(tmp_path / "a.exr"), np.zeros((4, 8), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_rgb_only(tmp_path: Path) -> None:
    write_exr(str(tmp_path / "rgb.exr"), gradient(8, 4, 3))
    assert header(tmp_path / "rgb.exr").channelnames == ("R", "G", "B")


def test_read_exr_channels_errors(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        read_exr_channels(str(tmp_path / "missing.exr"))
    path = tmp_path / "t.exr"
    write_exr(str(path), np.random.default_rng(3).uniform(0, 1, (256, 256, 4)).astype(np.float32))
    truncate(path, 0.6)
    with pytest.raises(CorruptImageError) as caught:
        read_exr_channels(str(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_layers_sorted_by_openexr_are_found_by_name(tmp_path: Path) -> None:
    rgba = gradient(8, 4)
    layers = {"zz.last": np.full((4, 8), 3.0, np.float32), "a_first.Y": np.full((4, 8), 2.0, np.float32)}
    write_exr(str(tmp_path / "l.exr"), rgba, layers=layers)
    got = read_exr_channels(str(tmp_path / "l.exr"))
    assert set(got) == {"R", "G", "B", "A", "zz.last", "a_first.Y"}
    assert got["zz.last"][0, 0] == 3.0 and got["a_first.Y"][0, 0] == 2.0
    with Plate.open(str(tmp_path / "l.exr")) as plate:
        np.testing.assert_allclose(plate.read(1001).pixels, rgba, atol=1e-3)
    assert oiio.geterror() == ""


@pytest.mark.parametrize("with_nan", [False, True])
def test_half_rgba_has_the_bits_openimageio_would_convert_to(tmp_path, with_nan) -> None:
    """write_exr converts half RGBA itself (no conversion left to the writer); every value, NaN
    payloads, infinities, overflow, denormals and ties included, gets the half OpenImageIO gives."""
    import numpy as np
    import OpenImageIO as oiio

    from ned_core.io.exr import write_exr

    rng = np.random.default_rng(11)
    bits = rng.integers(0, 1 << 32, size=(256, 512, 4), dtype=np.uint64).astype(np.uint32)
    bits[0, :64, 0] = np.arange(0x33000000, 0x33000040)  # around the smallest half denormal
    bits[1, :64, 0] = np.arange(0x477FE000, 0x477FE040)  # around the largest half, overflow
    bits[2, :64, 0] = (np.arange(64) << 13 | 0x1000) + 0x3F800000  # exact ties
    pixels = bits.view(np.float32)
    if not with_nan:
        pixels = np.where(np.isfinite(pixels), pixels, np.float32(0.5))
    path = str(tmp_path / "ours.exr")
    write_exr(path, pixels, compression="none")
    reference = str(tmp_path / "oiio.exr")
    out = oiio.ImageOutput.create(reference)
    out.open(reference, oiio.ImageSpec(512, 256, 4, "half"))
    out.write_image(pixels)
    out.close()

    def raw(name: str) -> bytes:
        image = oiio.ImageInput.open(name)
        data = image.read_image(0, 0, 0, 4, "unknown")
        image.close()
        return np.ascontiguousarray(data).tobytes()

    assert raw(path) == raw(reference)
