"""Colourspace names between Nuke and the engine: a Read's ``colorspace`` knob value → the name the
engine's OCIO config knows, and an EXR header's colourspace → the value to set on the internal Read.

Nuke's knob values depend on its OCIO config: ``nuke-default`` says ``linear``/``sRGB``/``rec709``, OCIO v2
configs say ``Linear Rec.709 (sRGB)``/``ACEScg``, ACES 1.x configs ``Utility - Linear - sRGB``, menus may
show a family path (``Utility/ACEScg``) and an unchanged Read says ``default (sRGB)``. Equivalent names
are grouped below (the engine's canonical name first); anything else is passed through unchanged, so a
studio config shared by Nuke and the engine works as it is.

Imports only the standard library; never ``nuke``.
"""

from __future__ import annotations

from collections.abc import Sequence

GROUPS: tuple[tuple[str, ...], ...] = (
    ("Linear Rec.709 (sRGB)", "lin_rec709_scene", "lin_rec709", "linear", "scene_linear", "Utility - Linear - sRGB",
     "lin_srgb"),
    ("sRGB Encoded Rec.709 (sRGB)", "srgb_rec709_scene", "sRGB", "srgb", "srgb_tx", "sRGB - Texture",
     "Utility - sRGB - Texture", "Input - Generic - sRGB - Texture", "color_picking", "texture_paint"),
    ("ACEScg", "lin_ap1_scene", "ACES - ACEScg", "lin_ap1"),
    ("ACES2065-1", "lin_ap0_scene", "ACES - ACES2065-1", "aces_interchange", "lin_ap0"),
    ("ACEScct", "acescct_ap1", "ACES - ACEScct"),
    ("Camera Rec.709", "ocio:itu709_rec709_scene", "rec709", "Utility - Rec.709 - Camera"),
    ("ADX10", "ocio:adx10_apd_scene", "Cineon", "cineon", "Input - ADX - ADX10"),
    ("Raw", "raw", "data", "Utility - Raw"),
)
"""Names of one colourspace across configs; the first is the engine's (built-in studio config) name."""


def _bare(value: str) -> str:
    """A knob value without Nuke's decorations: ``default (X)`` → X, ``Family/Name`` → Name."""
    value = value.strip()
    if value.startswith("default (") and value.endswith(")"):
        value = value[len("default ("):-1]
    if "/" in value:
        value = value.rsplit("/", 1)[1]
    return value.strip()


def _group(name: str) -> tuple[str, ...] | None:
    lowered = name.lower()
    for group in GROUPS:
        if any(lowered == member.lower() for member in group):
            return group
    return None


def is_default(value: str) -> bool:
    """True for an untouched Read (``default`` or ``default (X)``): the engine then reads the file's own
    colourspace by the same rules Nuke uses (EXR linear, 8-bit sRGB)."""
    return not value.strip() or value.strip() == "default" or value.strip().startswith("default (")


def engine_name(knob_value: str) -> str | None:
    """The engine's name for a Read's colourspace knob value; None for the default (the engine decides
    from the file)."""
    if is_default(knob_value):
        return None
    bare = _bare(knob_value)
    group = _group(bare)
    return group[0] if group else bare


def knob_value(header_name: str, available: Sequence[str]) -> str | None:
    """The entry of a Read's colourspace menu (``available``) that names ``header_name``, or None.

    Tries the name itself, then its equivalents, matching case-insensitively and ignoring menu family
    paths; never a ``default (...)`` entry, whose meaning changes with the file type.
    """
    group = _group(_bare(header_name))
    candidates = [header_name, *(group or ())]
    entries = [(entry, _bare(entry).lower()) for entry in available if not is_default(entry)]
    for candidate in candidates:
        for entry, _ in entries:
            if entry == candidate:
                return entry
        lowered = candidate.lower()
        for entry, bare in entries:
            if bare == lowered:
                return entry
    return None


__all__ = ["GROUPS", "engine_name", "is_default", "knob_value"]
