"""Reading plates: sequences in every format and pattern style, stills, the GRID movie, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from io_fixtures import GRID_MOVIE, gradient, truncate, write_image, write_sequence

from ned_core.errors import (
    CorruptImageError,
    FrameRangeError,
    InputNotFoundError,
    InvalidOptionError,
    NedError,
)
from ned_core.io import Plate

SRGB = "sRGB Encoded Rec.709 (sRGB)"
FRAMES = range(1001, 1006)


@pytest.fixture(autouse=True)
def _builtin_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


def one_line(error: NedError, *names: str) -> None:
    text = str(error)
    assert "\n" not in text
    for name in names:
        assert name in text, (name, text)


# -- sequences ------------------------------------------------------------------------------------------

FORMATS = [
    # extension, OIIO pixel type, channels, tolerance, colourspace inferred
    ("exr", "half", 4, 1e-3, "ACEScg"),
    ("exr", "float", 3, 0.0, "ACEScg"),
    ("dpx", "uint10", 3, 0.6 / 1023, SRGB),
    ("tif", "uint8", 4, 0.6 / 255, SRGB),
    ("tif", "uint16", 3, 0.6 / 65535, SRGB),
    ("png", "uint8", 4, 1.5 / 255, SRGB),  # straight alpha in the file: unpremultiplied, then premultiplied
    ("png", "uint16", 3, 0.6 / 65535, SRGB),
    ("jpg", "uint8", 3, 0.06, SRGB),  # lossy
]


@pytest.mark.parametrize(("ext", "pixel_type", "channels", "tolerance", "colorspace"), FORMATS)
def test_sequence_in_each_format(tmp_path: Path, ext: str, pixel_type: str, channels: int, tolerance: float,
                                 colorspace: str) -> None:
    written = write_sequence(tmp_path, f"plate.{{frame:04d}}.{ext}", FRAMES, channels=channels,
                             pixel_type=pixel_type)
    with Plate.open(str(tmp_path / f"plate.####.{ext}")) as plate:
        assert (plate.kind, plate.frames, plate.first, plate.last) == ("sequence", list(FRAMES), 1001, 1005)
        assert (plate.width, plate.height, plate.colorspace) == (48, 32, colorspace)
        assert plate.fps is None and not plate.has_audio
        for frame in (1004, 1001, 1005):  # any order
            image = plate.read(frame)
            assert image.frame == frame and image.colorspace == colorspace
            assert image.pixels.dtype == np.float32 and image.pixels.shape == (32, 48, channels)
            assert image.channel_names == ("R", "G", "B", "A")[:channels]
            error = np.abs(image.pixels - written[frame])
            assert (error.mean() if ext == "jpg" else error.max()) <= tolerance
            assert (image.alpha is not None) == (channels == 4)
            assert image.display_rgb8().shape == (32, 48, 3)


@pytest.mark.parametrize(("pattern", "name_for"), [
    ("p.####.exr", "p.{frame:04d}.exr"), ("p.#.exr", "p.{frame:04d}.exr"),
    ("p.%04d.exr", "p.{frame:04d}.exr"), ("p.@@@@@@.exr", "p.{frame:06d}.exr"),
    ("p_%d.exr", "p_{frame}.exr"), ("p.%06d.exr", "p.{frame:06d}.exr"),
])
def test_each_pattern_style(tmp_path: Path, pattern: str, name_for: str) -> None:
    write_sequence(tmp_path, name_for, FRAMES, width=8, height=4)
    with Plate.open(str(tmp_path / pattern)) as plate:
        assert plate.frames == list(FRAMES)
        assert plate.read(1003).pixels.shape == (4, 8, 4)


def test_negative_and_zero_based_frames(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", range(-2, 3), width=8, height=4)
    with Plate.open(str(tmp_path / "p.####.exr")) as plate:
        assert plate.frames == [-2, -1, 0, 1, 2]
        assert plate.read(-2).frame == -2


def test_frame_range_picks_the_shot(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", range(1001, 1011), width=8, height=4)
    with Plate.open(str(tmp_path / "p.####.exr"), frame_range=(1003, 1006)) as plate:
        assert (plate.frames, plate.first, plate.last) == ([1003, 1004, 1005, 1006], 1003, 1006)
        with pytest.raises(FrameRangeError) as caught:
            plate.read(1002)  # on disk, but outside the shot
        assert caught.value.frame == 1002


def test_exr_windows_aspect_metadata_and_channels_by_name(tmp_path: Path) -> None:
    pixels = gradient(40, 20, 5)
    # channels stored in an unusual order: R, G, B, A are found by name
    write_image(tmp_path / "p.1001.exr", pixels, "half", channel_names=("B", "A", "R", "depth.Z", "G"),
                data_window=(100, 50), display_window=(0, 0, 320, 180),
                attributes={"PixelAspectRatio": 2.0, "camera:name": "A-cam", "shot:take": 3,
                            "lens:focal": 35.5, "compression": "piz"},
                typed_attributes={"smpte:TimeCode": ("timecode", (0x01000000, 0)),
                                  "worldToCamera": ("matrix", tuple(float(i) for i in range(16))),
                                  "FramesPerSecond": ("rational", (24000, 1001))})
    with Plate.open(str(tmp_path / "p.####.exr")) as plate:
        assert (plate.width, plate.height) == (40, 20)
        assert plate.fps == pytest.approx(23.976, abs=1e-3)
        image = plate.read(1001)
    info = image.info
    assert (info.width, info.height) == (40, 20) and image.pixels.shape == (20, 40, 4)
    assert info.data_window == (100, 50, 40, 20)
    assert info.display_window == (0, 0, 320, 180)
    assert info.pixel_aspect == 2.0
    assert info.metadata["camera:name"] == "A-cam" and info.metadata["shot:take"] == 3
    assert info.metadata["lens:focal"] == pytest.approx(35.5)
    assert info.metadata_types["smpte:TimeCode"] == "timecode"
    assert info.metadata_types["worldToCamera"] == "matrix"
    assert "compression" not in info.metadata
    assert not any(name.startswith(("oiio:", "openexr:")) for name in info.metadata)
    stored = dict(zip(("B", "A", "R", "Z", "G"), np.moveaxis(pixels, -1, 0), strict=True))
    for i, name in enumerate("RGBA"):
        np.testing.assert_allclose(image.pixels[..., i], stored[name], atol=1e-3)
    np.testing.assert_allclose(image.alpha, stored["A"], atol=1e-3)


def test_grey_and_alpha_only_images(tmp_path: Path) -> None:
    grey = gradient(16, 8, 1)
    write_image(tmp_path / "g.png", grey, "uint8")
    with Plate.open(str(tmp_path / "g.png")) as plate:
        image = plate.read(1001)
    assert image.channel_names == ("R", "G", "B") and image.alpha is None
    np.testing.assert_allclose(image.pixels, np.repeat(grey, 3, -1), atol=0.6 / 255)
    write_image(tmp_path / "m.exr", grey, "half", channel_names=("A",))
    with Plate.open(str(tmp_path / "m.exr")) as plate:
        image = plate.read(1001)
    assert image.alpha is not None
    np.testing.assert_allclose(image.alpha, grey[..., 0], atol=1e-3)


def test_colorspace_declared_by_the_user_or_the_file(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", FRAMES, width=8, height=4)
    with Plate.open(str(tmp_path / "p.####.exr"), colorspace="lin_rec709") as plate:
        assert plate.colorspace == "Linear Rec.709 (sRGB)"
        assert plate.read(1001).colorspace == "Linear Rec.709 (sRGB)"
    write_image(tmp_path / "d.exr", gradient(8, 4), attributes={"colorInteropID": "lin_ap0_scene"})
    with Plate.open(str(tmp_path / "d.exr")) as plate:
        assert plate.colorspace == "ACES2065-1"
    with pytest.raises(InvalidOptionError) as caught:
        Plate.open(str(tmp_path / "p.####.exr"), colorspace="srgb_rec709")
    assert caught.value.field == "colorspace"
    one_line(caught.value, "srgb_rec709")


# -- stills ---------------------------------------------------------------------------------------------

def test_still_is_a_one_frame_shot(tmp_path: Path) -> None:
    pixels = gradient(30, 20, 3)
    path = write_image(tmp_path / "still.png", pixels, "uint8")
    with Plate.open(path) as plate:
        assert (plate.kind, plate.frames, plate.first, plate.last) == ("still", [1001], 1001, 1001)
        np.testing.assert_allclose(plate.read(1001).pixels, pixels, atol=0.6 / 255)
    with Plate.open(path, start=1) as plate:
        assert plate.frames == [1]


def test_still_with_a_range_is_held(tmp_path: Path) -> None:
    path = write_image(tmp_path / "still.1001.exr", gradient(8, 4), "half")  # a frame number, no token
    with Plate.open(path, frame_range=(1001, 1004)) as plate:
        assert plate.kind == "still" and plate.frames == [1001, 1002, 1003, 1004]
        np.testing.assert_array_equal(plate.read(1004).pixels, plate.read(1001).pixels)


# -- movies ---------------------------------------------------------------------------------------------

def _decode_directly(index: int) -> np.ndarray:
    with av.open(GRID_MOVIE) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError("frame not found")


def test_grid_movie() -> None:
    with Plate.open(GRID_MOVIE) as plate:
        assert plate.kind == "movie"
        assert (plate.first, plate.last, len(plate.frames)) == (1001, 1075, 75)
        assert (plate.width, plate.height) == (360, 288)
        assert plate.fps == 25.0 and plate.has_audio
        assert plate.colorspace == SRGB
        late, early, late_again = plate.read(1040), plate.read(1002), plate.read(1040)  # back and forth
        last = plate.read(1075)
    np.testing.assert_array_equal(late.pixels, late_again.pixels)
    assert late.pixels.shape == (288, 360, 3) and late.pixels.dtype == np.float32 and late.alpha is None
    assert late.info.data_window == late.info.display_window == (0, 0, 360, 288)
    assert late.info.metadata["FramesPerSecond"] == (25, 1)
    # An untagged SD clip is Rec.601 limited range, as FFmpeg converts it by default.
    np.testing.assert_array_equal(late.display_rgb8(), _decode_directly(39))
    np.testing.assert_array_equal(early.display_rgb8(), _decode_directly(1))
    assert not np.array_equal(late.pixels, early.pixels) and last.frame == 1075


def test_movie_start_and_range() -> None:
    with Plate.open(GRID_MOVIE, frame_range=(10, 20), start=1) as plate:
        assert plate.frames == list(range(10, 21))
        np.testing.assert_array_equal(plate.read(10).display_rgb8(), _decode_directly(9))
    with pytest.raises(FrameRangeError) as caught:
        Plate.open(GRID_MOVIE, frame_range=(1070, 1080))
    assert caught.value.frame == 1080
    one_line(caught.value, GRID_MOVIE, "1001-1075")


def test_movie_that_is_not_a_movie(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mov"
    fake.write_bytes(b"\x00" * 1000)
    with pytest.raises(CorruptImageError) as caught:
        Plate.open(str(fake))
    one_line(caught.value, str(fake))


# -- bad input ------------------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.exr", tmp_path / "nope.mp4"):
        with pytest.raises(InputNotFoundError) as caught:
            Plate.open(str(path))
        one_line(caught.value, str(path))


def test_pattern_with_no_match(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", FRAMES, width=8, height=4)
    pattern = str(tmp_path / "q.####.exr")
    with pytest.raises(InputNotFoundError) as caught:
        Plate.open(pattern)
    one_line(caught.value, pattern)


def test_missing_frame_inside_the_range(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", [1001, 1002, 1005, 1006], width=8, height=4)
    with pytest.raises(InputNotFoundError) as caught:
        Plate.open(str(tmp_path / "p.####.exr"))
    assert caught.value.frame == 1003
    one_line(caught.value, "1003", str(tmp_path / "p.1003.exr"))
    with Plate.open(str(tmp_path / "p.####.exr"), frame_range=(1005, 1006)) as plate:
        assert plate.frames == [1005, 1006]


@pytest.mark.parametrize(("frame_range", "bad"),
                         [((995, 1003), 995), ((1003, 1010), 1010), ((2001, 2002), 2002)])
def test_range_outside_the_plate(tmp_path: Path, frame_range: tuple[int, int], bad: int) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", FRAMES, width=8, height=4)
    with pytest.raises(FrameRangeError) as caught:
        Plate.open(str(tmp_path / "p.####.exr"), frame_range=frame_range)
    assert caught.value.frame == bad
    one_line(caught.value, f"{frame_range[0]}-{frame_range[1]}", "1001-1005")


def test_reversed_range(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", FRAMES, width=8, height=4)
    with pytest.raises(FrameRangeError):
        Plate.open(str(tmp_path / "p.####.exr"), frame_range=(1005, 1001))


def test_truncated_exr_frame(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", FRAMES, width=256, height=128)
    truncate(tmp_path / "p.1003.exr", 0.5)
    with Plate.open(str(tmp_path / "p.####.exr")) as plate:  # the header of the first frame is fine
        plate.read(1002)
        with pytest.raises(CorruptImageError) as caught:
            plate.read(1003)
    assert caught.value.frame == 1003
    one_line(caught.value, str(tmp_path / "p.1003.exr"))


def test_truncated_header_and_garbage(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", FRAMES, width=64, height=32)
    truncate(tmp_path / "p.1001.exr", 0.05)
    with pytest.raises(CorruptImageError) as caught:
        Plate.open(str(tmp_path / "p.####.exr"))
    one_line(caught.value, str(tmp_path / "p.1001.exr"))
    garbage = tmp_path / "g.exr"
    garbage.write_bytes(b"not an image" * 50)
    with pytest.raises(CorruptImageError):
        Plate.open(str(garbage))


def test_frame_deleted_after_open(tmp_path: Path) -> None:
    write_sequence(tmp_path, "p.{frame:04d}.exr", FRAMES, width=8, height=4)
    with Plate.open(str(tmp_path / "p.####.exr")) as plate:
        (tmp_path / "p.1004.exr").unlink()
        with pytest.raises(InputNotFoundError) as caught:
            plate.read(1004)
    assert caught.value.frame == 1004


# -- content key ----------------------------------------------------------------------------------------

def test_content_key_follows_bytes_range_and_kind(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_sequence(tmp_path / "a", "p.{frame:04d}.exr", FRAMES, width=16, height=8)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    key_a = Plate.open(str(tmp_path / "a" / "p.####.exr")).content_key()
    assert len(key_a) == 64 and int(key_a, 16) >= 0
    assert Plate.open(str(tmp_path / "b" / "p.####.exr")).content_key() == key_a  # moved plate, same key
    assert Plate.open(str(tmp_path / "a" / "p.####.exr"), frame_range=(1001, 1004)).content_key() != key_a
    write_image(tmp_path / "b" / "p.1005.exr", gradient(16, 8, 4, seed=99))
    assert Plate.open(str(tmp_path / "b" / "p.####.exr")).content_key() != key_a
    movie = Plate.open(GRID_MOVIE)
    assert movie.content_key() != Plate.open(GRID_MOVIE, start=1).content_key()
    assert movie.content_key() == Plate.open(GRID_MOVIE).content_key()


def test_half_files_read_to_the_float_bits_openimageio_gives(tmp_path) -> None:
    """Every one of the 65536 half values (signalling NaNs, denormals, infinities) reads as the float32
    bits OpenImageIO's own conversion gives."""
    import numpy as np
    import OpenImageIO as oiio

    from ned_core.io.plate import read_image

    bits = np.repeat(np.arange(65536, dtype=np.uint32).astype(np.uint16).reshape(256, 256, 1), 3, axis=2)
    path = str(tmp_path / "all.exr")
    out = oiio.ImageOutput.create(path)
    out.open(path, oiio.ImageSpec(256, 256, 3, "half"))
    out.write_image(np.ascontiguousarray(bits).view(np.float16))
    out.close()
    image = oiio.ImageInput.open(path)
    want = image.read_image(0, 0, 0, 3, oiio.FLOAT)
    image.close()
    pixels = read_image(path)[0]
    assert pixels.dtype == np.float32 and pixels.shape == (256, 256, 3)
    assert pixels.tobytes() == np.ascontiguousarray(want, np.float32).tobytes()


def test_widen_half_gives_numpy_s_bits_for_every_half() -> None:
    """OpenCV's fast path (no NaN or infinity in the frame) and the fallback both give, for every half
    value, the float32 bits numpy's exact conversion (which OpenImageIO's matches) gives."""
    import numpy as np

    from ned_core.io.plate import widen_half

    every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256, 1)
    finite = every[np.isfinite(every)].reshape(-1, 62, 1)  # 63488 finite halves: the OpenCV path
    for halves in (finite, every):
        wide = widen_half(halves)
        assert wide.dtype == np.float32 and wide.shape == halves.shape
        assert wide.tobytes() == halves.astype(np.float32).tobytes()


@pytest.mark.parametrize("colorspace", ["Linear Rec.709 (sRGB)", "ACEScg"])
def test_display_copy_of_a_half_plate_is_the_ocio_pass_s_bytes(tmp_path, colorspace) -> None:
    """A half plate's display copy comes from a per-channel table where the conversion allows (Linear
    Rec.709), from OCIO where it mixes channels (ACEScg): the same bytes either way."""
    import numpy as np
    import OpenImageIO as oiio

    from ned_core.io import Plate
    from ned_core.io.colour import to_display_rgb8

    rng = np.random.default_rng(5)
    pixels = (rng.random((32, 48, 3)) * 4 - 0.5).astype(np.float16)
    path = str(tmp_path / "plate.1001.exr")
    spec = oiio.ImageSpec(48, 32, 3, "half")
    spec.attribute("oiio:ColorSpace", colorspace)
    out = oiio.ImageOutput.create(path)
    out.open(path, spec)
    out.write_image(pixels)
    out.close()
    with Plate.open(path) as plate:
        image = plate.read(1001)
    assert image.colorspace == colorspace and image.stored is not None
    np.testing.assert_array_equal(image.display_rgb8(), to_display_rgb8(image.pixels, colorspace))
