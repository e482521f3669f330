"""Colour management for plates through OpenColorIO: which config, what a file's colourspace is, conversions.

The config is ``$OCIO`` when set (as every OCIO application does), else the built-in
``ocio://studio-config-latest``. The studio config is chosen over ``ocio://default`` (the CG config)
because plates come from cameras: it holds everything the CG config does (same names, ``scene_linear``
= ACEScg) plus the camera log encodings (ARRI LogC3/LogC4, S-Log3, V-Log, RED Log3G10, Canon Log...),
ADX for film-scan DPX and ``Camera Rec.709``, so a compositor can declare any of those.

Editing works on the plate's own pixels; analysis sees a display-referred copy (``to_display_rgb8``):
the config's ``sRGB - Display`` through its default view transform (un-tone-mapped in the built-in
configs), so a video plate reaches the tracker with exactly the pixels it decoded to. Output frames are
converted once, at write time, to the output colourspace (``output_colorspace``): a plate that is
already scene-linear (or data) keeps its own; a display-referred or log plate (video, 8-bit PNG/JPEG/
TIFF, DPX) goes to the config's ``scene_linear`` role, because hosts read EXR as scene-linear. The
conversion (``to_output``) is exactly invertible to the plate's code values: converting an output frame
back and quantising to the plate's bit depth gives the source's codes outside the matte, with RGBA
written as half only where that is proven for the pair (``output_needs_float``). No view transform is
ever baked into written pixels.

Uses PyOpenColorIO (the same OCIO release as the one inside the OpenImageIO wheel) rather than
``ImageBufAlgo.colorconvert``, which rebuilds its config on every call given an explicit one (~90 ms):
here processors are built once and cached, data conversions use OCIO's lossless path, and the display
copy goes float → uint8 in one OCIO pass (clamp and rounding included). OpenImageIO is used only to
read a file's header. Must not import PyAV, torch or zmq.
"""

from __future__ import annotations

import functools
import os

import cv2
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio

from ned_core.errors import InvalidOptionError
from ned_core.io.sequence import is_movie

BUILTIN_CONFIG = "ocio://studio-config-latest"

# Interop IDs first (OCIO 2.5 resolves them as names in any config that declares them), then the
# names older and site configs use.
_SRGB_ENCODED = ("srgb_rec709_scene", "sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture",
                 "Utility - sRGB - Texture", "Input - Generic - sRGB - Texture", "sRGB", "srgb")
_SRGB_DISPLAY = ("srgb_rec709_display", "sRGB - Display")
_LINEAR_REC709 = ("lin_rec709_scene", "Linear Rec.709 (sRGB)", "lin_rec709", "Utility - Linear - sRGB",
                  "linear")
_REC709_CAMERA = ("ocio:itu709_rec709_scene", "Camera Rec.709", "Utility - Rec.709 - Camera",
                  "rec709")
_PRINTING_DENSITY = ("ocio:adx10_apd_scene", "ADX10", "Input - ADX - ADX10", "Cineon", "cineon")

_LINEAR_EXTENSIONS = frozenset((".exr", ".sxr", ".mxr", ".hdr", ".rgbe"))


def ocio_config() -> str:
    """The OCIO config in use: ``$OCIO`` if set, else the built-in ``ocio://studio-config-latest``."""
    return os.environ.get("OCIO") or BUILTIN_CONFIG


@functools.lru_cache(maxsize=4)
def _load_config(uri: str) -> ocio.Config:
    try:
        return ocio.Config.CreateFromFile(uri)
    except Exception as exc:  # OCIO raises its own Exception type for every load failure
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidOptionError(f"cannot load the OpenColorIO config {uri!r}: {reason}",
                                 field="OCIO") from exc


def _config() -> ocio.Config:
    return _load_config(ocio_config())


@functools.lru_cache(maxsize=256)
def _canonical_name(uri: str, name: str) -> str:
    """The config's canonical name for ``name`` (a name, alias, role or interop ID), "" if it has none.

    Cached: OCIO's lookup costs ~50 µs, and every frame asks for the same few names several times.
    """
    return _load_config(uri).getCanonicalName(name) if name else ""


def _find(uri: str, candidates: tuple[str, ...]) -> str | None:
    """The canonical name of the first candidate (name, alias, role or interop ID) the config has."""
    for candidate in candidates:
        name = _canonical_name(uri, candidate)
        if name:
            return name
    return None


def check_colorspace(name: str) -> str:
    """The canonical colourspace name for ``name`` (a name, alias, role or interop ID) in the config.

    Raises
    ------
    InvalidOptionError
        (field ``colorspace``) when the config has no such colourspace.
    """
    uri = ocio_config()
    canonical = _canonical_name(uri, name)
    if not canonical:
        examples = ", ".join(repr(n) for n in (_find(uri, _LINEAR_REC709), _find(uri, ("ACEScg",)),
                                                 _find(uri, _SRGB_ENCODED)) if n)
        raise InvalidOptionError(
            f"unknown colourspace {name!r} in OCIO config {ocio_config()} (e.g. {examples})",
            field="colorspace")
    return canonical


def interop_id(name: str) -> str:
    """The colour interop ID of a colourspace (``lin_ap1_scene`` for ACEScg), or "" when it has none."""
    colour_space = _config().getColorSpace(check_colorspace(name))
    return colour_space.getInteropID() if colour_space is not None else ""


def scene_linear() -> str:
    """The config's ``scene_linear`` role (ACEScg in the built-in configs)."""
    name = _find(ocio_config(), ("scene_linear", "lin_ap1_scene", *_LINEAR_REC709))
    if name is None:
        raise InvalidOptionError(f"OCIO config {ocio_config()} has no scene_linear role: declare the "
                                 "plate's colourspace", field="colorspace")
    return name


def srgb_encoded() -> str:
    """The config's sRGB-encoded Rec.709 colourspace (what 8-bit images and video are)."""
    name = _find(ocio_config(), _SRGB_ENCODED)
    if name is None:
        raise InvalidOptionError(f"OCIO config {ocio_config()} has no sRGB colourspace: declare the "
                                 "plate's colourspace", field="colorspace")
    return name


def colorspace_from_header(declared: str | None, extension: str, bits: str,
                           dpx_transfer: str | None = None) -> str:
    """The colourspace of an image from what its header says; ``infer_colorspace`` without the I/O.

    ``declared`` is a colourspace the file names (NED's ``ned:colorspace``, the EXR colour interop ID
    OIIO reports as ``oiio:ColorSpace``), used when the config knows it. ``bits`` is the pixel type
    (``"uint8"``, ``"half"``...). See ``infer_colorspace`` for the rules.
    """
    uri = ocio_config()
    if declared:
        name = _canonical_name(uri, declared)
        if name:
            return name
    extension = extension.lower()
    if extension in _LINEAR_EXTENSIONS:
        return scene_linear()
    if extension == ".dpx" and dpx_transfer:
        transfer = dpx_transfer.lower()
        found = None
        if transfer == "linear":
            found = _find(uri, _LINEAR_REC709)
        elif transfer in ("printing density", "logarithmic"):
            found = _find(uri, _PRINTING_DENSITY)
        elif "709" in transfer or "274m" in transfer or transfer == "unspecified video":
            found = _find(uri, _REC709_CAMERA)
        if found:
            return found
    if extension in (".tif", ".tiff") and bits in ("half", "float", "double"):
        return scene_linear()
    return srgb_encoded()


def colorspace_of_spec(spec: oiio.ImageSpec, extension: str) -> str:
    """The colourspace of an image from its OpenImageIO header (see ``infer_colorspace``)."""
    declared = spec.get_string_attribute("ned:colorspace")
    if not declared and extension.lower() != ".dpx":
        # OIIO derives a DPX's oiio:ColorSpace from its transfer with its own guesses (Rec.709 → sRGB):
        # the transfer is read directly instead.
        declared = spec.get_string_attribute("oiio:ColorSpace")
    return colorspace_from_header(declared, extension, str(spec.format),
                                  spec.get_string_attribute("dpx:Transfer"))


def infer_colorspace(path: str) -> str:
    """The colourspace a plate file is in when the user does not say.

    A colourspace the file declares wins when the config knows it. Otherwise: EXR/HDR → the config's
    ``scene_linear`` (ACEScg in the built-in configs); float/half TIFF → ``scene_linear``; movies,
    PNG, JPEG and integer TIFF → sRGB encoded Rec.709. DPX goes by its header's transfer: ``Linear`` →
    Linear Rec.709, ``Printing density``/``Logarithmic`` → ADX10 (Cineon-style density code values),
    Rec.709 transfers → ``Camera Rec.709``; an undefined transfer (the usual case) is read as sRGB
    encoded, a display-referred guess to override with ``colorspace=`` for log scans.

    ``path`` may be a movie, an image file or a sequence pattern (judged by its extension only).
    """
    extension = os.path.splitext(path)[1].lower()
    if is_movie(path):
        return srgb_encoded()
    if os.path.isfile(path):
        image = oiio.ImageInput.open(path)
        if image is None:
            oiio.geterror()
        else:
            try:
                return colorspace_of_spec(image.spec(), extension)
            finally:
                image.close()
    return colorspace_from_header(None, extension, "half" if extension in _LINEAR_EXTENSIONS else "uint8")


@functools.lru_cache(maxsize=64)
def _processor(uri: str, src: str, dst: str, exact: bool = True) -> ocio.CPUProcessor | None:
    """The CPU processor src → dst, or None when OCIO says the conversion is a no-op.

    ``exact`` asks for OCIO's lossless optimisation (about 1e-6 off the formulas); otherwise OCIO's
    fast pow/log approximations (about 3e-4 relative, four times faster) are fine for 8-bit display.
    """
    config = _load_config(uri)
    processor = config.getProcessor(src, dst)
    if processor.isNoOp():
        return None
    if exact:
        return processor.getOptimizedCPUProcessor(ocio.OptimizationFlags.OPTIMIZATION_LOSSLESS)
    return processor.getDefaultCPUProcessor()


def _apply(processor: ocio.CPUProcessor, pixels: np.ndarray) -> np.ndarray:
    """Apply to RGB, leaving every other channel as it is; float32 (H, W, C) out, a new array."""
    height, width, channels = pixels.shape
    # OCIO's packed RGBA path is about four times faster than its RGB path, so RGB goes through RGBA.
    rgba = np.empty((height, width, 4), np.float32)
    rgba[..., :3] = pixels[..., :3]
    rgba[..., 3] = pixels[..., 3] if channels > 3 else 1.0
    processor.applyRGBA(rgba)
    if channels == 4:
        return rgba
    out = np.empty((height, width, channels), np.float32)
    out[..., :3] = rgba[..., :3]
    out[..., 3:] = pixels[..., 3:]
    return out


def convert(pixels: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Convert float32 (H, W, C) pixels from colourspace ``src`` to ``dst`` through OCIO.

    Only the first three channels (RGB) are converted; alpha and any further channels are untouched.
    The input is never modified; a no-op conversion returns it as float32 without copying.
    """
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise ValueError(f"convert needs (H, W, C>=3) pixels, got shape {pixels.shape}")
    processor = _processor(ocio_config(), check_colorspace(src), check_colorspace(dst))
    if processor is None:
        return np.asarray(pixels, np.float32)
    return _apply(processor, np.asarray(pixels, np.float32))


def display_colorspace() -> str:
    """What analysis sees: the config's ``sRGB - Display`` (else its sRGB-encoded colourspace)."""
    return _find(ocio_config(), _SRGB_DISPLAY) or srgb_encoded()


@functools.lru_cache(maxsize=64)
def _display_processor(uri: str, src: str, dst: str) -> ocio.CPUProcessor:
    """float32 → uint8 processor from ``src`` to the display, clamping and rounding in OCIO's SIMD code.

    When src → dst moves no value in [0, 1] by more than a fraction of an 8-bit step (sRGB-encoded →
    ``sRGB - Display`` in the built-in configs), only the quantisation is kept: video analysis stays
    exact to the decoded 8-bit values and skips a colour pass over every frame.
    """
    config = _load_config(uri)
    flags = ocio.OptimizationFlags.OPTIMIZATION_DEFAULT
    depths = (ocio.BitDepth.BIT_DEPTH_F32, ocio.BitDepth.BIT_DEPTH_UINT8)
    processor = _processor(uri, src, dst, exact=False)
    if processor is not None:
        ramp = np.linspace(0.0, 1.0, 1024, dtype=np.float32)
        probe = np.stack([ramp, ramp[::-1], np.roll(ramp, 311), np.ones_like(ramp)], -1)[None].copy()
        moved = probe.copy()
        processor.applyRGBA(moved)
        if np.abs(moved[..., :3] - probe[..., :3]).max() >= 1e-4:
            return config.getProcessor(src, dst).getOptimizedCPUProcessor(*depths, flags)
    return config.getProcessor(dst, dst).getOptimizedCPUProcessor(*depths, flags)


def to_display_rgb8(pixels: np.ndarray, colorspace: str) -> np.ndarray:
    """Display-referred sRGB uint8 (H, W, 3) of the RGB of ``pixels`` (in ``colorspace``) for analysis.

    Values are clipped to the display range (NaN becomes 0); the input is not modified.
    """
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise ValueError(f"to_display_rgb8 needs (H, W, C>=3) pixels, got shape {pixels.shape}")
    uri = ocio_config()
    processor = _display_processor(uri, check_colorspace(colorspace), display_colorspace())
    height, width, channels = pixels.shape
    source = pixels if channels in (3, 4) else pixels[..., :3]
    source = np.ascontiguousarray(source, dtype=np.float32)
    channels = source.shape[2]
    out = np.empty((height, width, channels), np.uint8)
    processor.apply(ocio.PackedImageDesc(source, width, height, channels),
                    ocio.PackedImageDesc(out, width, height, channels, ocio.BitDepth.BIT_DEPTH_UINT8,
                                         1, channels, channels * width))
    return out if channels == 3 else np.ascontiguousarray(out[..., :3])


@functools.lru_cache(maxsize=16)
def _half_display_table(uri: str, src: str, dst: str) -> np.ndarray | None:
    """(3, 65536) uint8: what ``to_display_rgb8`` gives every half float in each channel, or None when
    the conversion mixes channels (a gamut matrix), where a per-channel table cannot stand in for it.

    Made by running the display processor itself over all 65536 halves, so a table lookup gives the
    same bytes as the processor (tested over every half)."""
    config = _load_config(uri)
    if not _separable(config.getProcessor(src, dst).getOptimizedProcessor(
            ocio.OptimizationFlags.OPTIMIZATION_DEFAULT)):
        return None
    processor = _display_processor(uri, src, dst)
    values = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    ramp = np.ascontiguousarray(np.repeat(values[None, :, None], 3, axis=2))
    out = np.empty(ramp.shape, np.uint8)
    width = ramp.shape[1]
    processor.apply(ocio.PackedImageDesc(ramp, width, 1, 3),
                    ocio.PackedImageDesc(out, width, 1, 3, ocio.BitDepth.BIT_DEPTH_UINT8, 1, 3, 3 * width))
    table = np.ascontiguousarray(out[0].T)
    table.flags.writeable = False
    return table


def half_to_display_rgb8(half: np.ndarray, colorspace: str) -> np.ndarray | None:
    """``to_display_rgb8`` of float16 (H, W, C>=3) pixels by table lookup (a quarter of the OCIO pass's
    time at 1080p, the same bytes), or None when the conversion mixes channels."""
    if half.dtype != np.float16 or half.ndim != 3 or half.shape[2] < 3:
        return None
    table = _half_display_table(ocio_config(), check_colorspace(colorspace), display_colorspace())
    if table is None:
        return None
    bits = half.view(np.uint16)
    planes = [np.take(table[c], np.ascontiguousarray(bits[..., c]), mode="clip") for c in range(3)]
    return cv2.merge(planes)


# -- output ------------------------------------------------------------------------------------------------

_KEPT_ENCODINGS = ("scene-linear", "data")


def is_scene_linear(name: str) -> bool:
    """True when a colourspace is scene-linear or data, i.e. what an EXR should hold as it is.

    Read from the colourspace's ``encoding`` where the config declares one (OCIO 2 configs do); in a
    config without encodings: data colourspaces, the ``scene_linear`` role and linear Rec.709.
    """
    uri = ocio_config()
    canonical = check_colorspace(name)
    colour_space = _load_config(uri).getColorSpace(canonical)
    encoding = colour_space.getEncoding() if colour_space is not None else ""
    if encoding:
        return encoding in _KEPT_ENCODINGS
    if colour_space is not None and colour_space.isData():
        return True
    return canonical in (_canonical_name(uri, "scene_linear"), _find(uri, _LINEAR_REC709))


def output_colorspace(plate_colorspace: str, requested: str | None = None) -> str:
    """The colourspace a plate's output EXRs are written in (canonical name).

    ``requested`` (the CLI's ``--output-colorspace``, a job's ``output.colorspace``) wins, the plate's
    own included. Otherwise a scene-linear (or data) plate keeps its own colourspace and any other plate
    (sRGB-encoded video and 8-bit images, log or video-encoded DPX) is linearised: with a site config
    (``$OCIO``) into its ``scene_linear`` role, the facility's working space; with the built-in config
    into "Linear Rec.709 (sRGB)" — video and 8-bit images are Rec.709, so their primaries stay and half
    float gives every code back (the built-in role, ACEScg, would change the gamut and need float).

    Raises
    ------
    InvalidOptionError
        (field ``output_colorspace``) an unknown requested name.
    """
    if requested is not None:
        try:
            return check_colorspace(requested)
        except InvalidOptionError as error:
            raise InvalidOptionError(str(error), field="output_colorspace") from None
    plate = check_colorspace(plate_colorspace)
    if is_scene_linear(plate):
        return plate
    if ocio_config() == BUILTIN_CONFIG:
        linear = _find(ocio_config(), _LINEAR_REC709)
        if linear is not None:
            return linear
    return scene_linear()


@functools.lru_cache(maxsize=64)
def _output_processor(uri: str, src: str, dst: str) -> ocio.CPUProcessor | None:
    """The processor output frames go through, or None for a no-op.

    OCIO's default optimisation (its SIMD pow/log, about 3e-4 relative off the formulas, four to five
    times faster than the lossless path): the round trip to 8- and 10-bit codes stays exact with it
    (checked per pair by ``output_needs_float`` and by the tests), and it runs on every frame.
    """
    config = _load_config(uri)
    processor = config.getProcessor(src, dst)
    if processor.isNoOp():
        return None
    return processor.getOptimizedCPUProcessor(ocio.OptimizationFlags.OPTIMIZATION_DEFAULT)


def to_output(pixels: np.ndarray, src: str, dst: str) -> np.ndarray:
    """The RGB of float32 (H, W, C) ``pixels`` converted from ``src`` to ``dst`` for writing.

    Associated alpha (4 channels) is honoured: where alpha is neither 0 nor 1 the colour is divided by
    it, converted and multiplied back (as a compositing package linearises a premultiplied image);
    opaque pixels are converted directly. Alpha and further channels are untouched, and so is the
    input; a no-op conversion returns the input itself.
    """
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise ValueError(f"to_output needs (H, W, C>=3) pixels, got shape {pixels.shape}")
    processor = _output_processor(ocio_config(), check_colorspace(src), check_colorspace(dst))
    if processor is None:
        return pixels
    if pixels.shape[2] != 4:
        return _apply(processor, np.asarray(pixels, np.float32))
    out = np.array(pixels, np.float32, order="C")  # a copy: the caller's frame may still be in use
    alpha = out[..., 3]
    if alpha.min() < 1.0 or alpha.max() > 1.0:
        # Not opaque everywhere: convert the unassociated colour. x / 1 * 1 is exact, so opaque pixels
        # come out as the direct conversion; alpha 0 is left as it is (nothing to divide by).
        scale = np.where(alpha > 0.0, alpha, np.float32(1.0))[..., None]
        out[..., :3] /= scale
        processor.applyRGBA(out)
        out[..., :3] *= scale
    else:
        processor.applyRGBA(out)
    return out


# OCIO transforms that act on each channel alone (a matrix only when diagonal): a conversion made of
# these alone round-trips every colour if it round-trips every code of one channel.
_SEPARABLE = (ocio.ExponentTransform, ocio.ExponentWithLinearTransform, ocio.LogTransform,
              ocio.LogAffineTransform, ocio.LogCameraTransform, ocio.Lut1DTransform, ocio.RangeTransform)


def _separable(processor: ocio.Processor) -> bool:
    for transform in processor.createGroupTransform():
        if isinstance(transform, ocio.MatrixTransform):
            matrix = np.asarray(transform.getMatrix(), np.float64).reshape(4, 4)[:3, :3]
            if np.any(matrix[~np.eye(3, dtype=bool)] != 0.0):
                return False
        elif isinstance(transform, ocio.Lut1DTransform):
            if transform.getHueAdjust() != ocio.Lut1DHueAdjust.HUE_NONE:
                return False  # hue-preserving 1D LUTs (DW3) mix the channels
        elif not isinstance(transform, _SEPARABLE):
            return False
    return True


@functools.lru_cache(maxsize=64)
def _half_round_trips(uri: str, src: str, dst: str, bits: int) -> bool:
    """True when every ``bits``-bit code of ``src``, converted to ``dst`` and stored as half, comes back.

    Proven only for conversions that act per channel (``_separable``), by trying every code; a
    conversion that mixes channels (a gamut matrix, e.g. sRGB → ACEScg) does not round-trip through
    half for every colour (about 0.5% of 8-bit sRGB colours miss by one code), so it gets False.
    """
    config = _load_config(uri)
    forward = _output_processor(uri, src, dst)
    if forward is None:
        return True
    if not _separable(config.getProcessor(src, dst).getOptimizedProcessor(
            ocio.OptimizationFlags.OPTIMIZATION_DEFAULT)):
        return False
    top = (1 << bits) - 1
    codes = np.arange(top + 1, dtype=np.float64)
    ramp = np.empty((1, top + 1, 4), np.float32)
    ramp[..., :3] = (codes / top).astype(np.float32)[None, :, None]
    ramp[..., 3] = 1.0
    forward.applyRGBA(ramp)
    stored = ramp.astype(np.float16).astype(np.float32)
    inverse = _processor(uri, dst, src)
    if inverse is not None:
        inverse.applyRGBA(stored)
    return bool(np.array_equal(np.rint(stored[0, :, :3].astype(np.float64) * top), codes[:, None].repeat(3, 1)))


def output_needs_float(source_format: str, source_bits: int, src: str, dst: str) -> bool:
    """True when output RGBA must be 32-bit float to keep the plate's values (else half is exact).

    ``source_format``/``source_bits`` describe how the plate stores its pixels (``ImageInfo``). Without
    a conversion: float plates and integers over 11 bits need float. With one: integer plates of up to
    11 bits get half only when ``_half_round_trips`` proves every code comes back; anything else is
    float (half values converted to another colourspace are not half values any more).
    """
    src, dst = check_colorspace(src), check_colorspace(dst)
    integer = source_format not in ("half", "float", "double")
    if src == dst or _output_processor(ocio_config(), src, dst) is None:
        return source_format in ("float", "double") or (integer and source_bits > 11)
    if not integer or source_bits > 11:
        return True
    return not _half_round_trips(ocio_config(), src, dst, source_bits)
