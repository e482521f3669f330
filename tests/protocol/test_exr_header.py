"""``ned_protocol.exr_header``: the pure-Python EXR header reader the host plugins use, against real EXR
files written by OpenImageIO (and NED's own writer)."""

from __future__ import annotations

import struct

import numpy as np
import OpenImageIO as oiio
import pytest
from ned_protocol.errors import CorruptImageError, InputNotFoundError
from ned_protocol.exr_header import MAGIC, channel_names, colorspace, read_header, read_headers


def write(path, channels=("R", "G", "B", "A"), attributes=(), size=(16, 12), origin=(0, 0)) -> str:
    spec = oiio.ImageSpec(size[0], size[1], len(channels), "half")
    spec.channelnames = tuple(channels)
    spec.x, spec.y = origin
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, 64, 48
    for name, value in attributes:
        spec.attribute(name, value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    out.write_image(np.zeros((size[1], size[0], len(channels)), np.float32))
    out.close()
    return str(path)


def test_reads_windows_channels_and_attributes(tmp_path) -> None:
    path = write(tmp_path / "a.exr", ("R", "G", "B", "A", "ned.matte", "stmap.u", "stmap.v"),
                 (("ned:colorspace", "ACEScg"), ("ned:frames", 12), ("owner", "comp")), origin=(4, 2))
    header = read_header(path)
    assert header["dataWindow"] == (4, 2, 19, 13) and header["displayWindow"] == (0, 0, 63, 47)
    assert channel_names(header) == ["A", "B", "G", "R", "ned.matte", "stmap.u", "stmap.v"]
    assert header["channels"][0] == {"name": "A", "type": "half", "sampling": (1, 1)}
    assert header["ned:colorspace"] == "ACEScg" and header["ned:frames"] == 12 and header["owner"] == "comp"
    assert header["pixelAspectRatio"] == 1.0 and colorspace(header) == "ACEScg"


def test_the_colourspace_comes_from_ned_then_the_interop_id_then_oiio() -> None:
    assert colorspace({"colorInteropID": "lin_ap1_scene", "ned:colorspace": "ACEScg"}) == "ACEScg"
    assert colorspace({"colorInteropID": "lin_rec709_scene", "oiio:ColorSpace": "x"}) == "lin_rec709_scene"
    assert colorspace({"oiio:ColorSpace": " sRGB "}) == "sRGB"
    assert colorspace({"ned:colorspace": "", "owner": "x"}) is None


def test_neds_own_output_frames(tmp_path) -> None:
    from ned_core.io.exr import write_exr

    rgba = np.zeros((12, 16, 4), np.float32)
    write_exr(str(tmp_path / "n.exr"), rgba, layers={"ned.matte": rgba[..., 0]}, colorspace="Linear Rec.709 (sRGB)")
    header = read_header(str(tmp_path / "n.exr"))
    assert colorspace(header) == "Linear Rec.709 (sRGB)" and channel_names(header) == ["A", "B", "G", "R"]
    # the layers are parts of their own (multi-part EXR): every part's header is read
    parts = read_headers(str(tmp_path / "n.exr"))
    assert len(parts) == 2 and "ned.matte" in channel_names(parts)


def test_bad_files_get_stable_codes(tmp_path) -> None:
    with pytest.raises(InputNotFoundError) as missing:
        read_header(str(tmp_path / "none.exr"))
    assert missing.value.code == "input_not_found" and missing.value.path == str(tmp_path / "none.exr")
    (tmp_path / "png.exr").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    good = (tmp_path / "good.exr")
    write(good)
    data = good.read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[:40])
    (tmp_path / "neg.exr").write_bytes(struct.pack("<iI", MAGIC, 2) + b"x\0int\0" + struct.pack("<i", -4))
    (tmp_path / "bad.exr").write_bytes(struct.pack("<iI", MAGIC, 2) + b"w\0box2i\0" + struct.pack("<i", 3) + b"abc\0")
    for name, what in (("png.exr", "no OpenEXR magic number"), ("cut.exr", "ends inside its header"),
                       ("neg.exr", "negative size"), ("bad.exr", "malformed")):
        with pytest.raises(CorruptImageError, match=what) as error:
            read_header(str(tmp_path / name))
        assert error.value.code == "corrupt_image"
