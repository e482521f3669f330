"""Colour through OpenColorIO: the config, colourspace names, inference from files, conversions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from io_fixtures import GRID_MOVIE, SITE_CONFIG, gradient, write_image

from ned_core.errors import InvalidOptionError
from ned_core.io.colour import (
    BUILTIN_CONFIG,
    check_colorspace,
    convert,
    half_to_display_rgb8,
    infer_colorspace,
    is_scene_linear,
    ocio_config,
    output_colorspace,
    output_needs_float,
    to_display_rgb8,
    to_output,
)
from ned_core.io.plate import widen_half

SRGB = "sRGB Encoded Rec.709 (sRGB)"
LINEAR = "Linear Rec.709 (sRGB)"


@pytest.fixture(autouse=True)
def _builtin_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1, written out independently of OCIO."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def test_builtin_config_when_ocio_is_unset() -> None:
    assert ocio_config() == BUILTIN_CONFIG == "ocio://studio-config-latest"


def test_ocio_environment_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    # a camera space in the studio config
    assert check_colorspace("ARRI LogC3 (EI800)") == "ARRI LogC3 (EI800)"
    monkeypatch.setenv("OCIO", "ocio://cg-config-latest")
    assert ocio_config() == "ocio://cg-config-latest"
    with pytest.raises(InvalidOptionError):
        check_colorspace("ARRI LogC3 (EI800)")  # the CG config has no camera spaces
    assert check_colorspace("ACEScg") == "ACEScg"


def test_site_config_through_ocio(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "site.ocio"
    config.write_text(SITE_CONFIG)
    monkeypatch.setenv("OCIO", str(config))
    assert check_colorspace("scene_linear") == "linear"
    assert infer_colorspace("/nowhere/plate.####.exr") == "linear"
    assert infer_colorspace(GRID_MOVIE) == "sRGB"
    encoded = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 2, 3)
    np.testing.assert_allclose(convert(encoded, "sRGB", "linear"), srgb_to_linear(encoded), atol=1e-6)
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
    np.testing.assert_array_equal(to_display_rgb8(codes / np.float32(255), "sRGB"), codes)
    with pytest.raises(InvalidOptionError):
        check_colorspace("ACEScg")


def test_unloadable_ocio_config_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope" / "config.ocio")
    monkeypatch.setenv("OCIO", missing)
    with pytest.raises(InvalidOptionError) as caught:
        check_colorspace("ACEScg")
    assert caught.value.field == "OCIO" and missing in str(caught.value)


@pytest.mark.parametrize(("name", "canonical"), [
    ("ACEScg", "ACEScg"), ("acescg", "ACEScg"), ("scene_linear", "ACEScg"), ("lin_ap1_scene", "ACEScg"),
    ("srgb_tx", SRGB), ("sRGB - Texture", SRGB), (SRGB, SRGB), ("lin_rec709", LINEAR), (LINEAR, LINEAR),
    ("sRGB - Display", "sRGB - Display"),
])
def test_check_colorspace_resolves_names_aliases_roles(name: str, canonical: str) -> None:
    assert check_colorspace(name) == canonical


@pytest.mark.parametrize("name", ["srgb_rec709", "", "Rec709-ish"])
def test_check_colorspace_rejects_unknown(name: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        check_colorspace(name)
    assert caught.value.field == "colorspace"
    assert repr(name) in str(caught.value) and "\n" not in str(caught.value)


def test_srgb_to_linear_matches_the_standard_and_round_trips() -> None:
    encoded = np.linspace(0.0, 1.0, 64 * 4 * 3, dtype=np.float32).reshape(64, 4, 3)
    linear = convert(encoded, SRGB, LINEAR)
    np.testing.assert_allclose(linear, srgb_to_linear(encoded.astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert abs(float(convert(np.full((1, 1, 3), 0.5, np.float32), SRGB, LINEAR)[0, 0, 0]) - 0.214041) < 1e-5
    back = convert(linear, LINEAR, SRGB)
    np.testing.assert_allclose(back, encoded, atol=2e-6)


def test_scene_linear_hdr_round_trip_through_acescg() -> None:
    values = np.random.default_rng(1).uniform(0.0, 16.0, size=(32, 32, 3)).astype(np.float32)
    there = convert(values, LINEAR, "ACEScg")
    assert not np.allclose(there, values)  # a real gamut change, not a relabel
    np.testing.assert_allclose(convert(there, "ACEScg", LINEAR), values, rtol=1e-4, atol=1e-5)


def test_convert_leaves_alpha_and_extra_channels_and_the_input_alone() -> None:
    rgba = gradient(40, 30, channels=4)
    rgba[..., 3] = np.random.default_rng(2).uniform(0, 1, size=(30, 40))
    extra = np.concatenate([rgba, rgba[..., :1] * 7.0], axis=-1)
    before = extra.copy()
    out = convert(extra, LINEAR, SRGB)
    assert out.shape == extra.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 3:], extra[..., 3:])
    np.testing.assert_array_equal(extra, before)
    np.testing.assert_allclose(out[..., :3], convert(extra[..., :3], LINEAR, SRGB))


def test_convert_to_itself_is_a_no_op() -> None:
    pixels = gradient(8, 8, 3)
    assert convert(pixels, "ACEScg", "scene_linear") is pixels


def test_display_of_an_srgb_plate_is_exactly_its_8bit_values() -> None:
    codes = np.random.default_rng(3).integers(0, 256, size=(24, 40, 3), dtype=np.uint8)
    pixels = codes.astype(np.float32) / 255.0
    np.testing.assert_array_equal(to_display_rgb8(pixels, SRGB), codes)


def test_display_of_linear_is_srgb_encoded_and_clipped() -> None:
    linear = np.array([[[0.0, 0.214041, 1.0], [-0.5, 4.0, np.nan]]], np.float32)
    rgba = np.concatenate([linear, np.full((1, 2, 1), 0.25, np.float32)], axis=-1)
    before = rgba.copy()
    out = to_display_rgb8(rgba, LINEAR)
    np.testing.assert_array_equal(rgba, before)
    assert out.shape == (1, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[[0, 128, 255], [0, 255, 0]]])


def test_display_of_many_channels() -> None:
    pixels = np.concatenate([gradient(16, 8, 3), np.full((8, 16, 3), 9.0, np.float32)], axis=-1)
    np.testing.assert_array_equal(to_display_rgb8(pixels, SRGB), to_display_rgb8(pixels[..., :3], SRGB))


def test_display_of_acescg_differs_from_linear_rec709() -> None:
    pixels = np.full((2, 2, 3), [0.1, 0.4, 0.05], np.float32)
    assert not np.array_equal(to_display_rgb8(pixels, "ACEScg"), to_display_rgb8(pixels, LINEAR))


@pytest.mark.parametrize("colorspace", [LINEAR, SRGB, "Gamma 2.2 Encoded Rec.709", "Raw"])
@pytest.mark.parametrize("channels", [3, 4])
def test_display_of_half_pixels_by_table_is_the_same_bytes(colorspace: str, channels: int) -> None:
    every_half = np.arange(1 << 16, dtype=np.uint16).view(np.float16)  # NaNs and infinities included
    shuffled = np.random.default_rng(channels).permutation(np.tile(every_half, channels))
    half = np.ascontiguousarray(shuffled.reshape(-1, 128, channels))
    looked_up = half_to_display_rgb8(half, colorspace)
    assert looked_up is not None and looked_up.dtype == np.uint8 and looked_up.shape == half.shape[:2] + (3,)
    np.testing.assert_array_equal(looked_up, to_display_rgb8(widen_half(half), colorspace))


def test_display_by_table_declines_conversions_that_mix_channels() -> None:
    half = np.full((2, 2, 3), 0.25, np.float16)
    assert half_to_display_rgb8(half, "ACEScg") is None  # a gamut matrix: no per-channel table
    assert half_to_display_rgb8(half.astype(np.float32), LINEAR) is None


@pytest.mark.parametrize(("name", "pixel_type", "attributes", "expected"), [
    ("a.exr", "half", {}, "ACEScg"),
    ("a.exr", "float", {"colorInteropID": "lin_rec709_scene"}, LINEAR),
    ("a.exr", "half", {"colorInteropID": "ocio:acescct_ap1_scene"}, "ACEScct"),
    ("a.png", "uint8", {}, SRGB),
    ("a.jpg", "uint8", {}, SRGB),
    ("a.tif", "uint8", {}, SRGB),
    ("a.tif", "uint16", {}, SRGB),
    ("a.tif", "float", {}, "ACEScg"),
    ("a.hdr", "float", {}, LINEAR),  # Radiance files declare linear Rec.709 themselves
    ("a.dpx", "uint10", {}, SRGB),
    ("a.dpx", "uint10", {"dpx:Transfer": "Printing density"}, "ADX10"),
    ("a.dpx", "uint10", {"dpx:Transfer": "Linear"}, LINEAR),
    ("a.dpx", "uint10", {"dpx:Transfer": "ITU-R 709-4"}, "Camera Rec.709"),
])
def test_infer_colorspace_from_files(tmp_path: Path, name: str, pixel_type: str,
                                     attributes: dict[str, object], expected: str) -> None:
    path = write_image(tmp_path / name, gradient(16, 8, 3), pixel_type, attributes=attributes)
    assert infer_colorspace(path) == expected


def test_infer_colorspace_of_patterns_and_movies() -> None:
    assert infer_colorspace("/nowhere/plate.####.exr") == "ACEScg"
    assert infer_colorspace("/nowhere/plate.%04d.png") == SRGB
    assert infer_colorspace(GRID_MOVIE) == SRGB
    assert os.path.isfile(GRID_MOVIE)


def test_output_colorspace_in_a_site_config_without_encodings(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    config = tmp_path / "site.ocio"
    config.write_text(SITE_CONFIG)
    monkeypatch.setenv("OCIO", str(config))
    assert [is_scene_linear(n) for n in ("linear", "raw", "sRGB", "plate_log")] == [True, True, False, False]
    assert output_colorspace("sRGB") == output_colorspace("plate_log") == "linear"  # its scene_linear role
    assert output_colorspace("raw") == "raw" and output_colorspace("linear", "sRGB") == "sRGB"
    with pytest.raises(InvalidOptionError) as caught:
        output_colorspace("sRGB", "ACEScg")
    assert caught.value.field == "output_colorspace"
    assert not output_needs_float("uint8", 8, "sRGB", "linear")  # per channel: every code checked in half
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
    linear = to_output(codes / np.float32(255), "sRGB", "linear").astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(np.rint(convert(linear, "linear", "sRGB") * 255), codes)


def test_builtin_encodings_decide_what_is_scene_linear() -> None:
    assert is_scene_linear("ACEScg") and is_scene_linear(LINEAR) and is_scene_linear("Raw")
    assert not is_scene_linear(SRGB) and not is_scene_linear("ACEScct") and not is_scene_linear("ADX10")
