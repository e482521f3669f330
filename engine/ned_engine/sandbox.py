"""Which files a job may touch: every path must resolve inside the engine's ``--allow-root`` folders.

A path is made absolute-only, then resolved (``os.path.realpath``: ``..`` and every symbolic link
followed), and must lie inside one of the (equally resolved) roots. A sequence pattern is checked as
a pattern (its folder) and file by file, so a frame that is a link to a file outside is refused too.
Output files are written by rename, which replaces a link rather than following it, so checking the
output folder is enough. The worker checks again when the job starts (the files may have changed
since it was queued).

Imports ned_core's naming helpers and ned_protocol's errors; nothing else of the engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from ned_protocol.errors import ForbiddenPathError, InputNotFoundError

from ned_core.io import frame_path, is_sequence_pattern, scan_frames


class PathPolicy:
    """The allowed roots and the checks against them.

    Parameters
    ----------
    roots
        Existing folders; an empty list allows no path at all (inline plates and inline delivery
        still work).
    """

    def __init__(self, roots: Sequence[str]) -> None:
        resolved = []
        for root in roots:
            real = os.path.realpath(root)
            if not os.path.isdir(real):
                raise InputNotFoundError(f"--allow-root {root} is not a folder", path=root, field="allow_root")
            resolved.append(real)
        self.roots: tuple[str, ...] = tuple(dict.fromkeys(resolved))

    def inside(self, real: str) -> bool:
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def resolve(self, path: str, field: str) -> str:
        """``path`` resolved, after checking it is absolute and inside a root.

        Raises
        ------
        ForbiddenPathError
            A relative path, or one that resolves outside every root.
        """
        if not self.roots:
            raise ForbiddenPathError(f"this engine accepts no file paths ({field} {path}); start it with "
                                     f"--allow-root DIR, or send the plate inline", path=path, field=field)
        if not os.path.isabs(path):
            raise ForbiddenPathError(f"{field} must be an absolute path, got {path}", path=path, field=field)
        real = os.path.realpath(path)
        if not self.inside(real):
            shown = path if real == os.path.normpath(path) else f"{path} (resolves to {real})"
            raise ForbiddenPathError(f"{shown} is outside the allowed roots ({', '.join(self.roots)})",
                                     path=path, field=field)
        return real

    def check_files(self, files: Iterable[str], field: str) -> None:
        """Every one of ``files`` (existing or not) resolves inside a root."""
        for path in files:
            self.resolve(path, field)

    def check_input(self, path: str, field: str, frame_range: tuple[int, int] | None = None) -> str:
        """Check a plate or mask path and the files it names; returns the resolved pattern/path.

        Raises
        ------
        ForbiddenPathError
            The path or one of its frame files resolves outside the roots.
        InputNotFoundError
            Nothing exists there (a pattern that matches no file, a missing movie).
        """
        real = self.resolve(path, field)
        if is_sequence_pattern(path):
            frames = scan_frames(path)
            if frame_range is not None:
                frames = [f for f in frames if frame_range[0] <= f <= frame_range[1]]
            if not frames:
                raise InputNotFoundError(f"no files match {path}" + (
                    f" in {frame_range[0]}-{frame_range[1]}" if frame_range else ""), path=path, field=field)
            self.check_files((frame_path(path, f) for f in frames), field)
        elif not os.path.exists(real):
            raise InputNotFoundError(f"missing file {path}", path=path, field=field)
        return real


__all__ = ["PathPolicy"]
