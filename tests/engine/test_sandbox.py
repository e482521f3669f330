"""Allowed roots: every job path must resolve inside them, through ``..`` and symbolic links."""

from __future__ import annotations

import os

import pytest
from ned_engine.sandbox import PathPolicy
from ned_protocol.errors import ForbiddenPathError, InputNotFoundError


@pytest.fixture
def tree(tmp_path):
    root, outside = tmp_path / "shows", tmp_path / "private"
    (root / "sh010").mkdir(parents=True)
    outside.mkdir()
    for frame in (1, 2):
        (root / "sh010" / f"p.{frame:04d}.exr").write_bytes(b"x")
        (outside / f"p.{frame:04d}.exr").write_bytes(b"x")
    return root, outside


def test_inside_is_fine(tree):
    root, _ = tree
    policy = PathPolicy([str(root)])
    assert policy.check_input(str(root / "sh010" / "p.####.exr"), "spec.plate") == str(root / "sh010" / "p.####.exr")
    assert policy.resolve(str(root / "new" / "deep" / "o.####.exr"), "spec.output.pattern")


@pytest.mark.parametrize("make", [
    lambda root, outside: str(outside / "p.####.exr"),
    lambda root, outside: str(root / ".." / "private" / "p.####.exr"),
    lambda root, outside: (os.symlink(outside, root / "link"), str(root / "link" / "p.####.exr"))[1],
    lambda root, outside: (os.symlink(outside / "p.0002.exr", root / "sh010" / "p.0003.exr"),
                           str(root / "sh010" / "p.####.exr"))[1],
    lambda root, outside: "sh010/p.####.exr",
    lambda root, outside: str(root) + "-evil/p.####.exr",
])
def test_escapes_are_forbidden(tree, make):
    root, outside = tree
    (root.parent / "shows-evil").mkdir()
    (root.parent / "shows-evil" / "p.0001.exr").write_bytes(b"x")
    path = make(root, outside)
    with pytest.raises(ForbiddenPathError) as error:
        PathPolicy([str(root)]).check_input(path, "spec.plate")
    assert error.value.field == "spec.plate"
    assert error.value.path in (path, str(root / "sh010" / "p.0003.exr"))  # the pattern, or the linked frame


def test_missing_and_rootless(tree):
    root, _ = tree
    with pytest.raises(InputNotFoundError):
        PathPolicy([str(root)]).check_input(str(root / "sh010" / "none.####.exr"), "spec.plate")
    with pytest.raises(InputNotFoundError):
        PathPolicy([str(root)]).check_input(str(root / "sh010" / "p.####.exr"), "spec.plate", (5, 9))
    with pytest.raises(ForbiddenPathError) as error:
        PathPolicy([]).resolve(str(root / "x"), "spec.plate")
    assert "--allow-root" in error.value.message
    with pytest.raises(InputNotFoundError):
        PathPolicy([str(root / "nope")])
