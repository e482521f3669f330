"""A strip's NED settings → the job's ``JobSpec``, checked against ``ned_protocol.schema``.

The host layer reads the strip (its file, frame map, sampled emotion curves, face, backend, range) into a
``StripJob``; ``job_spec`` turns it into the spec the engine runs. The spec is checked with the
protocol's own ``JobSpec`` schema here, so a bad value is reported in Blender before anything is sent.

No bpy; imports ``ned_protocol``'s schema and errors only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ned_protocol.errors import InvalidOptionError
from ned_protocol.schema import OUTPUT_LAYERS, check_job_spec
from ned_protocol.schema import spec_for_version as for_version

from .frames import FrameMap
from .keys import Samples, emotion_keys, mouth_preservation


@dataclass
class StripJob:
    """What the add-on knows about one strip's edit, in Blender's terms.

    ``plate`` is a movie path or a ``####`` sequence pattern; ``first``/``last`` are timeline frames;
    ``samples`` holds each ``ned_*`` property's value at every frame ``first..last``; ``layers`` are
    the output layers written beside RGBA (``matte``, ``stmap``).
    """

    plate: str
    is_movie: bool
    frame_map: FrameMap
    first: int
    last: int
    samples: Samples
    output_pattern: str
    backend: str = "default"
    face_point: tuple[float, float] | None = None
    label: str = ""
    colorspace: str | None = None
    output_colorspace: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] = OUTPUT_LAYERS

    @property
    def plate_frames(self) -> list[int]:
        """The plate's frame numbers of ``first..last``."""
        return [self.frame_map.plate_frame(f) for f in range(self.first, self.last + 1)]


def check(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` checked against the protocol's ``JobSpec`` schema: see ``schema.check_job_spec``."""
    return check_job_spec(spec)


def job_spec(job: StripJob) -> dict[str, Any]:
    """The ``JobSpec`` of a strip's edit (keys in the plate's numbers, sampled at every frame)."""
    frames = job.plate_frames
    if frames != sorted(frames):
        raise InvalidOptionError("the strip shows its files out of order; NED needs increasing frame numbers",
                                 field="strip")
    spec: dict[str, Any] = {
        "plate": job.plate,
        "frame_range": [frames[0], frames[-1]],
        "keys": emotion_keys(job.samples, frames),
        "interpolation": "linear",
        "mouth_preservation": round(mouth_preservation(job.samples), 6),
        "output": {"pattern": job.output_pattern},
    }
    if job.output_colorspace:
        spec["output"]["colorspace"] = job.output_colorspace
    if tuple(job.layers) != OUTPUT_LAYERS:  # left out when both: an engine before protocol 1.3 takes it
        spec["output"]["layers"] = list(job.layers)
    if job.is_movie:
        spec["start"] = job.frame_map.numbers[0]
    if job.colorspace:
        spec["colorspace"] = job.colorspace
    if job.face_point is not None:
        spec["face"] = {"point": [float(job.face_point[0]), float(job.face_point[1])]}
    if job.backend:
        spec["backends"] = {"preset": job.backend}
    if job.label:
        spec["label"] = job.label[:256]
    spec.update(job.options)
    return check(spec)


def frames_of(first: int, last: int) -> Sequence[int]:
    """The timeline frames ``first..last`` (inclusive) the host samples the curves at."""
    return range(int(first), int(last) + 1)


__all__ = ["StripJob", "check", "for_version", "frames_of", "job_spec"]
