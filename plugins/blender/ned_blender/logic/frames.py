"""Frame alignment: which frame of the plate a strip shows at each timeline frame, and back.

A Blender strip shows its content from ``frame_start`` (the content's first frame, even when the strip is
trimmed) one content frame per timeline frame. The engine numbers a movie's frames from the job's
``start`` (NED's convention: 1001) and an image sequence's by the numbers in its file names. ``FrameMap``
holds that correspondence for one strip, so emotion keys (sampled on the timeline) go to the engine in
the plate's numbers and the edited frames come back onto the very timeline frames they were made from.

No bpy; standard library only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ned_protocol.errors import FrameRangeError, InvalidOptionError

MOVIE_START = 1001
"""The number the job gives a movie's first frame (``JobSpec.start``)."""

_NUMBER = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class FrameMap:
    """Timeline frames ⇄ plate frame numbers of one strip.

    Parameters
    ----------
    frame_start
        The timeline frame of the content's first frame (a strip's ``frame_start``).
    numbers
        The plate frame number of each content frame, in order.
    """

    frame_start: int
    numbers: tuple[int, ...]

    @classmethod
    def movie(cls, frame_start: float, length: int, start: int = MOVIE_START) -> FrameMap:
        """A movie of ``length`` frames whose first frame the engine numbers ``start``."""
        return cls(int(round(frame_start)), tuple(range(start, start + int(length))))

    @classmethod
    def sequence(cls, frame_start: float, numbers: Sequence[int]) -> FrameMap:
        """An image sequence whose content frames carry these file numbers."""
        return cls(int(round(frame_start)), tuple(int(n) for n in numbers))

    def plate_frame(self, timeline_frame: int) -> int:
        """The plate's number of the frame shown at ``timeline_frame``.

        Raises
        ------
        FrameRangeError
            The strip shows no content frame there.
        """
        index = int(timeline_frame) - self.frame_start
        if not 0 <= index < len(self.numbers):
            raise FrameRangeError(f"timeline frame {timeline_frame} is outside the strip's content "
                                  f"({self.frame_start}-{self.frame_start + len(self.numbers) - 1})",
                                  frame=int(timeline_frame), field="frame_range")
        return self.numbers[index]

    def timeline_frame(self, plate_frame: int) -> int:
        """The timeline frame that shows the plate's frame ``plate_frame``."""
        try:
            return self.frame_start + self.numbers.index(int(plate_frame))
        except ValueError:
            raise FrameRangeError(f"plate frame {plate_frame} is not in the strip", frame=int(plate_frame),
                                  field="frame_range") from None

    def clip(self, first: int, last: int) -> tuple[int, int]:
        """``[first, last]`` (timeline, inclusive) limited to the content; refused when nothing is left."""
        lo, hi = max(int(first), self.frame_start), min(int(last), self.frame_start + len(self.numbers) - 1)
        if lo > hi:
            raise FrameRangeError(f"frame range {first}-{last} does not overlap the strip's content "
                                  f"({self.frame_start}-{self.frame_start + len(self.numbers) - 1})",
                                  field="frame_range")
        return lo, hi


def sequence_pattern(directory: str, filenames: Sequence[str]) -> tuple[str, list[int]]:
    """The ``####`` pattern of an image strip's files and each file's frame number, in order.

    Raises
    ------
    InvalidOptionError
        The files are not one numbered sequence (different names around the number, a file with no
        number, or the same number twice).
    """
    if not filenames:
        raise InvalidOptionError("the image strip has no files", field="strip")
    parts = [_NUMBER.match(name) for name in filenames]
    if any(p is None for p in parts):
        bad = next(name for name, p in zip(filenames, parts) if p is None)
        raise InvalidOptionError(f"image file {bad} has no frame number: NED needs a numbered sequence "
                                 f"(name.####.exr)", path=os.path.join(directory, bad), field="strip")
    heads = {(p.group(1), p.group(3)) for p in parts if p is not None}
    if len(heads) != 1:
        raise InvalidOptionError(f"the image strip's files are not one sequence ({filenames[0]} ... "
                                 f"{filenames[-1]})", path=directory, field="strip")
    numbers = [int(p.group(2)) for p in parts if p is not None]
    if len(set(numbers)) != len(numbers):
        raise InvalidOptionError("the image strip shows a file twice", path=directory, field="strip")
    head, tail = heads.pop()
    padding = min(len(p.group(2)) for p in parts if p is not None)  # 9999 → 10000 still pads to 4
    return os.path.join(directory, f"{head}{'#' * padding}{tail}"), numbers


def result_run(frames: dict[int, str], frame_map: FrameMap) -> tuple[int, list[str]]:
    """Where the result strip starts on the timeline and its files, in order.

    ``frames`` maps the plate's frame numbers to written files. The run starts at the earliest frame and
    stops at the first gap (a cancelled job's frames end there), so every file lands on the timeline frame
    of the source frame it was made from.

    Raises
    ------
    FrameRangeError
        No frame was written.
    """
    if not frames:
        raise FrameRangeError("the job wrote no frames", field="frame_range")
    ordered = sorted((frame_map.timeline_frame(f), path) for f, path in frames.items())
    start, paths = ordered[0][0], []
    for offset, (timeline, path) in enumerate(ordered):
        if timeline != start + offset:
            break
        paths.append(path)
    return start, paths
