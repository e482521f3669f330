"""An EXR header's colourspace name (the engine's OCIO config) → the name Blender's own config uses.

The engine names colourspaces in its OCIO config (the built-in ``studio-config``, or ``$OCIO``): a
scene-linear plate comes back as ``Linear Rec.709 (sRGB)``, a video plate kept in its own encoding as
``sRGB Encoded Rec.709 (sRGB)``. Blender's image and strip colourspace menus list the colourspaces of
Blender's bundled config (``Linear Rec.709``, ``sRGB``, ``ACEScg``...). ``STUDIO_TO_BLENDER`` was made
by matching every studio-config colourspace's name and aliases against the names and aliases of
Blender 4.5's and 5.0's ``datafiles/colormanagement/config.ocio`` (checked by tests/blender); a name
already in Blender's menu passes through. What a given Blender offers is checked by the host layer.

No bpy; standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable

SCENE_LINEAR = "Linear Rec.709 (sRGB)"
"""The engine's (built-in config) name of Blender's scene-linear space ("Linear Rec.709"): what the add-on
asks the engine to write. Blender reads an EXR with more than RGBA (NED's matte and STMap layers make it
multi-layer) as scene-linear whatever colourspace the strip names, so only this space displays right."""

STUDIO_TO_BLENDER: dict[str, str] = {
    # scene-referred (what EXR plates and NED's outputs carry)
    "Linear Rec.709 (sRGB)": "Linear Rec.709",
    "Linear P3-D65": "Linear DCI-P3 D65",
    "Linear Rec.2020": "Linear Rec.2020",
    "ACEScg": "ACEScg",
    "ACES2065-1": "ACES2065-1",
    "ACEScc": "ACEScc",  # Blender 5.0+
    "ACEScct": "ACEScct",  # Blender 5.0+
    "sRGB Encoded Rec.709 (sRGB)": "sRGB",
    "Gamma 2.2 Encoded Rec.709": "sRGB",
    "sRGB Encoded P3-D65": "Display P3",
    "Raw": "Non-Color",
    # display-referred
    "sRGB - Display": "sRGB",
    "Display P3 - Display": "Display P3",
    "Rec.1886 Rec.709 - Display": "Rec.1886",
    "Rec.2100-HLG - Display": "Rec.2100-HLG",  # Blender 5.0+
    "Rec.2100-PQ - Display": "Rec.2100-PQ",  # Blender 5.0+
}
"""Studio-config colourspace names (OCIO 2.5's ``studio-config-latest``) → Blender's config names."""

ALIASES: dict[str, str] = {
    # OpenEXR 3.4 / OCIO 2.5 colour interop ids (the ``colorInteropID`` header attribute)
    "lin_rec709_scene": "Linear Rec.709", "lin_p3d65_scene": "Linear DCI-P3 D65",
    "lin_rec2020_scene": "Linear Rec.2020", "lin_ap1_scene": "ACEScg", "lin_ap0_scene": "ACES2065-1",
    "lin_ciexyzd65_scene": "Linear CIE-XYZ D65", "srgb_rec709_scene": "sRGB", "g22_rec709_scene": "sRGB",
    "srgb_p3d65_scene": "Display P3", "srgb_rec709_display": "sRGB", "srgb_p3d65_display": "Display P3",
    "g24_rec709_display": "Rec.1886", "data": "Non-Color",
    # the studio config's and Blender's own aliases of the spaces above (lower case)
    "lin_rec709_srgb": "Linear Rec.709", "lin_rec709": "Linear Rec.709", "lin_srgb": "Linear Rec.709",
    "linear": "Linear Rec.709", "utility - linear - srgb": "Linear Rec.709",
    "utility - linear - rec.709": "Linear Rec.709", "scene_linear": "Linear Rec.709",
    "lin_p3d65": "Linear DCI-P3 D65", "lin_rec2020": "Linear Rec.2020",
    "lin_ap1": "ACEScg", "aces - acescg": "ACEScg", "lin_ap0": "ACES2065-1", "aces2065_1": "ACES2065-1",
    "aces - aces2065-1": "ACES2065-1", "srgb_texture": "sRGB", "srgb_tx": "sRGB", "srgb_encoded_rec709_srgb": "sRGB",
    "utility - srgb - texture": "sRGB", "srgb - texture": "sRGB", "raw": "Non-Color", "utility - raw": "Non-Color",
}


BLENDER_NAMES = frozenset(STUDIO_TO_BLENDER.values()) | {
    "Linear CIE-XYZ D65", "Linear CIE-XYZ E", "Linear FilmLight E-Gamut", "Rec.2020", "AgX Log", "Filmic Log"}
"""Names of Blender's config (4.5/5.0) that pass through unchanged."""


def blender_colorspace(name: str | None, available: Iterable[str] | None = None) -> str | None:
    """The Blender colourspace for an EXR's ``oiio:ColorSpace`` ``name`` (None: no match).

    ``available`` is the running Blender's list (a strip's ``colorspace_settings.name`` choices): a
    name outside it is no match, so an older Blender never gets a name it lacks.
    """
    if not name:
        return None
    key = name.strip()
    candidates = [key if key in BLENDER_NAMES else None, STUDIO_TO_BLENDER.get(key), ALIASES.get(key.lower())]
    if available is None:
        return next((c for c in candidates if c), None)
    choices = list(available)
    by_lower = {c.lower(): c for c in choices}
    candidates.insert(0, by_lower.get(key.lower()))  # already one of this Blender's names
    return next((c for c in candidates if c and c in choices), None)


BLENDER_TO_STUDIO: dict[str, str] = {
    "Linear Rec.709": "Linear Rec.709 (sRGB)", "sRGB": "sRGB Encoded Rec.709 (sRGB)", "ACEScg": "ACEScg",
    "ACES2065-1": "ACES2065-1", "Linear Rec.2020": "Linear Rec.2020", "Linear DCI-P3 D65": "Linear P3-D65",
    "Non-Color": "Raw",
}
"""Blender's names → the engine's built-in config names, for a plate whose colourspace the artist set."""


def engine_colorspace(blender_name: str | None) -> str | None:
    """The engine's name of a Blender colourspace (None: none known, let the engine read the file)."""
    return BLENDER_TO_STUDIO.get(blender_name or "")
