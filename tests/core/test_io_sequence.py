"""Frame naming: ranges, padding tokens, disk scans."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ned_core.errors import FrameRangeError
from ned_core.io.sequence import frame_path, is_movie, is_sequence_pattern, parse_frame_range, scan_frames


@pytest.mark.parametrize(("text", "expected"), [
    ("1001-1075", (1001, 1075)),
    ("1001", (1001, 1001)),
    (" 1001 - 1010 ", (1001, 1010)),
    ("1001:1010", (1001, 1010)),
    ("1001 1010", (1001, 1010)),
    ("-5--1", (-5, -1)),
    ("-5-10", (-5, 10)),
    ("0", (0, 0)),
])
def test_parse_frame_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1075-1001", "1001-", "1001-1010-1020", "10.5"])
def test_parse_frame_range_rejects(text: str) -> None:
    with pytest.raises(FrameRangeError) as caught:
        parse_frame_range(text)
    assert caught.value.field == "frames"
    assert repr(text) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("plate.####.exr", True), ("plate.#.exr", True), ("plate.%04d.dpx", True), ("plate.%d.png", True),
    ("plate.@@@@.tif", True), ("plate.1001.exr", False), ("plate.exr", False), ("shot#12/plate.exr", False),
    ("clip.mov", False),
])
def test_is_sequence_pattern(pattern: str, expected: bool) -> None:
    assert is_sequence_pattern(pattern) is expected


@pytest.mark.parametrize(("pattern", "frame", "expected"), [
    ("p.####.exr", 1001, "p.1001.exr"),
    ("p.####.exr", 7, "p.0007.exr"),
    ("p.####.exr", 12345, "p.12345.exr"),
    ("p.####.exr", -1, "p.-001.exr"),
    ("p.#.exr", 7, "p.0007.exr"),  # a lone '#' is four digits (OIIO, Nuke)
    ("p.##.exr", 7, "p.07.exr"),
    ("p.@.exr", 7, "p.7.exr"),
    ("p.@@@.exr", 7, "p.007.exr"),
    ("p.%04d.exr", 1001, "p.1001.exr"),
    ("p.%06d.exr", 1001, "p.001001.exr"),
    ("p.%d.exr", 7, "p.7.exr"),
    ("p.%4d.exr", 7, "p.0007.exr"),
    ("p.exr", 1001, "p.exr"),
    ("shot_#/p_v##.####.exr", 1001, "shot_#/p_v##.1001.exr"),  # only the file name's last token
])
def test_frame_path(pattern: str, frame: int, expected: str) -> None:
    assert frame_path(pattern, frame) == expected


@given(frame=st.integers(-100_000, 10_000_000), style=st.sampled_from(["####", "#", "%04d", "@@@@@", "%d"]))
def test_frame_path_writes_the_number_with_its_padding(frame: int, style: str) -> None:
    name = frame_path(f"plate.{style}.exr", frame)
    number = name[len("plate."):-len(".exr")]
    assert int(number) == frame
    width = {"####": 4, "#": 4, "%04d": 4, "@@@@@": 5, "%d": 0}[style]
    assert len(number) == max(width, len(str(frame)))


def test_scan_frames_finds_exactly_the_pattern(tmp_path: os.PathLike[str]) -> None:
    names = ["p.1001.exr", "p.1002.exr", "p.1010.exr", "p.-001.exr", "p.12345.exr",
             "p.01003.exr",  # five digits where four are asked: another pattern's file
             "p.1004.dpx", "q.1005.exr", ".p.1006.exr.3f2a.tmp", "p.1007.exr.bak", "p.abcd.exr"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    pattern = str(tmp_path / "p.####.exr")
    assert scan_frames(pattern) == [-1, 1001, 1002, 1010, 12345]
    assert scan_frames(str(tmp_path / "p.@@@@.exr")) == [-1, 1001, 1002, 1010, 12345]
    assert scan_frames(str(tmp_path / "p.%d.exr")) == [1001, 1002, 1010, 12345]
    assert scan_frames(str(tmp_path / "p.%05d.exr")) == [1003, 12345]


def test_scan_frames_of_a_missing_directory_is_empty(tmp_path: os.PathLike[str]) -> None:
    assert scan_frames(str(tmp_path / "nowhere" / "p.####.exr")) == []


def test_scan_frames_needs_a_token() -> None:
    with pytest.raises(ValueError):
        scan_frames("plate.exr")


@pytest.mark.parametrize(("path", "expected"), [
    ("a.mp4", True), ("a.MOV", True), ("a.mpg", True), ("a.exr", False), ("a.####.png", False)])
def test_is_movie(path: str, expected: bool) -> None:
    assert is_movie(path) is expected
