"""The Video Sequencer side: a strip → ``logic.job.StripJob``, and the result → an image strip above it.

Reads the active strip (movie or image sequence), samples its ``ned_*`` properties through Blender's own
fcurves at every frame of the range, and, when a job ends, adds the edited frames as an image-sequence
strip in the channel above the source, on the source's frames, with its colourspace taken from the EXR
header (``oiio:ColorSpace``).

Imports bpy, ``compat``, ``properties`` and ``logic``; never the network.
"""

from __future__ import annotations

import os
from typing import Any

import bpy
from ned_protocol import exr_header
from ned_protocol.errors import InputNotFoundError, InvalidOptionError
from ned_protocol.schema import OUTPUT_LAYERS

from . import compat
from .logic import colour, paths
from .logic.frames import FrameMap, result_run, sequence_pattern
from .logic.job import StripJob, frames_of
from .properties import FLOAT_PROPERTIES

SOURCE_TYPES = {"MOVIE", "IMAGE"}
RESULT_SUFFIX = ".ned"
FALLBACK_COLORSPACE = "Linear Rec.709"
"""Blender's scene-linear space: used (with a warning) only when an EXR names no colourspace."""


def frame_map_of(strip: Any) -> tuple[str, bool, FrameMap]:
    """``(plate, is_movie, frame map)`` of a movie or image strip.

    Raises
    ------
    InvalidOptionError
        Not a movie or image strip, or image files that are not one numbered sequence.
    InputNotFoundError
        The movie file does not exist.
    """
    if strip is None or strip.type not in SOURCE_TYPES:
        kind = "nothing" if strip is None else f"a {strip.type.lower()} strip"
        raise InvalidOptionError(f"select a movie or image-sequence strip (the active strip is {kind})",
                                 field="strip")
    if strip.type == "MOVIE":
        path = os.path.normpath(bpy.path.abspath(strip.filepath))
        if not os.path.isfile(path):
            raise InputNotFoundError(f"the movie {path} does not exist", path=path, field="strip")
        return path, True, FrameMap.movie(strip.frame_start, strip.frame_duration)
    directory = os.path.normpath(bpy.path.abspath(strip.directory))
    pattern, numbers = sequence_pattern(directory, [element.filename for element in strip.elements])
    return pattern, False, FrameMap.sequence(strip.frame_start, numbers)


def timeline_range(strip: Any, frame_map: FrameMap) -> tuple[int, int]:
    """The timeline frames to process: the custom range or the strip's visible frames, within its content."""
    if strip.ned.use_range:
        first, last = strip.ned.frame_start, strip.ned.frame_end
        if first > last:
            raise InvalidOptionError(f"the range's start {first} is after its end {last}", field="frame_range")
    else:
        first, last = int(strip.frame_final_start), int(strip.frame_final_end) - 1
    return frame_map.clip(first, last)


def sample(scene: Any, strip: Any, first: int, last: int) -> dict[str, list[float]]:
    """Each ``ned_*`` property's value at every frame ``first..last``, from its fcurve when animated."""
    samples = {}
    for name in FLOAT_PROPERTIES:
        curve = compat.fcurve(scene, strip.path_from_id(name))
        if curve is None:
            value = float(getattr(strip, name))
            samples[name] = [value] * (last - first + 1)
        else:
            samples[name] = [float(curve.evaluate(frame)) for frame in frames_of(first, last)]
    return samples


def output_base(scene: Any) -> str:
    """The scene's output folder, absolute.

    Raises
    ------
    InvalidOptionError
        A ``//`` (blend-relative) folder while the .blend has never been saved.
    """
    folder = scene.ned.output_folder.strip() or "//ned/"
    if folder.startswith("//") and not bpy.data.filepath:
        raise InvalidOptionError("save the .blend file first, or give an absolute output folder "
                                 "(it is relative to the .blend)", field="output_folder")
    return os.path.normpath(bpy.path.abspath(folder))


def strip_job(scene: Any, strip: Any) -> StripJob:
    """Everything the job needs from ``strip`` (see ``logic.job.job_spec``)."""
    plate, is_movie, frame_map = frame_map_of(strip)
    first, last = timeline_range(strip, frame_map)
    settings = strip.ned
    face = (settings.face_x, settings.face_y) if settings.face_mode == "POINT" else None
    blender_space = getattr(getattr(strip, "colorspace_settings", None), "name", None)
    return StripJob(plate=plate, is_movie=is_movie, frame_map=frame_map, first=first, last=last,
                    samples=sample(scene, strip, first, last),
                    output_pattern=paths.output_pattern(output_base(scene), strip.name),
                    backend=settings.backend.strip() or "default", face_point=face,
                    label=f"{os.path.basename(bpy.data.filepath) or 'Blender'} {scene.name} {strip.name}",
                    colorspace=None if is_movie else colour.engine_colorspace(blender_space),
                    output_colorspace=scene.ned.output_colorspace.strip() or None,
                    layers=tuple(name for name in OUTPUT_LAYERS if getattr(scene.ned, f"write_{name}")))


def colorspace_choices(strip: Any) -> list[str]:
    """The colourspace names this Blender offers for a strip."""
    return [item.identifier for item in strip.colorspace_settings.bl_rna.properties["name"].enum_items]


def load_result(scene: Any, source: Any, frames: dict[int, str], frame_map: FrameMap) -> tuple[Any, str | None]:
    """Add (or replace) the image strip of ``source``'s edited ``frames`` one channel above it.

    Returns the new strip and a warning (None when all went well).
    """
    start, files = result_run({f: p for f, p in frames.items() if os.path.isfile(p)}, frame_map)
    collection = compat.strips(scene)
    previous = compat.strips(scene, every=True).get(source.ned.result) if source.ned.result else None
    if previous is not None:
        collection.remove(previous)
    result = collection.new_image(name=source.name + RESULT_SUFFIX, filepath=files[0],
                                  channel=source.channel + 1, frame_start=start)
    for path in files[1:]:
        result.elements.append(os.path.basename(path))
    result.frame_final_duration = len(files)
    warning = None
    header = exr_header.read_header(files[0])
    header_name = exr_header.colorspace(header)
    name = colour.blender_colorspace(header_name, colorspace_choices(result))
    # Blender shows a first part with more than RGBA as a multi-layer image (scene-linear whatever the
    # strip says); NED's own frames keep their layers in parts of their own.
    layers = [c for c in exr_header.channel_names(header) if c not in ("R", "G", "B", "A")]
    if name is not None and layers and name != FALLBACK_COLORSPACE:
        warning = (f"{files[0]} is in {header_name} but has layers ({', '.join(layers[:3])}), and Blender shows "
                   f"multi-layer EXRs as scene-linear: set the Output Colourspace to the engine's "
                   f"{colour.SCENE_LINEAR!r}")
    if name is None:
        name = FALLBACK_COLORSPACE
        warning = (f"{files[0]} names colourspace {header_name!r}, which this Blender does not have; "
                   f"loaded as {name}" if header_name else f"{files[0]} names no colourspace; loaded as {name}")
    result.colorspace_settings.name = name
    source.ned.result = result.name
    result_image(result, files, name)
    return result, warning


def result_image(result: Any, files: list[str], colorspace: str) -> Any:
    """The image-sequence datablock of a result (named like its strip), for the compositor's Image node."""
    image = bpy.data.images.get(result.name)
    if image is not None:
        bpy.data.images.remove(image)
    image = bpy.data.images.load(files[0], check_existing=False)
    image.name = result.name
    image.source = "SEQUENCE"
    image.colorspace_settings.name = colorspace
    return image


def add_image_node(scene: Any, result: Any) -> Any:
    """An Image node in the scene's compositor showing ``result``'s frames on the frames the strip covers.

    The node's image user maps timeline frame ``t`` to file number ``t - frame_start + 1 + frame_offset``,
    so the first file's own number (the plate's) lands on the strip's first frame.
    """
    tree = compat.compositor_tree(scene, create=True)
    image = bpy.data.images.get(result.name)
    if image is None:
        raise InvalidOptionError(f"no image for {result.name}: process the strip again", field="strip")
    node = tree.nodes.get(result.name) or tree.nodes.new("CompositorNodeImage")
    node.name = node.label = result.name
    node.image = image
    first_number = paths.frame_number(result.elements[0].filename)
    node.frame_start = int(result.frame_final_start)
    node.frame_duration = len(result.elements)
    node.frame_offset = first_number - 1
    return node
