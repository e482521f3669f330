"""Import boundaries: ned_protocol loads no torch/numpy/ned_core, uses no pickle, and parses as Python 3.9."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ned_protocol

PACKAGE = Path(ned_protocol.__file__).resolve().parent
MODULES = sorted(PACKAGE.glob("*.py"))


def test_importing_the_protocol_loads_no_heavy_or_core_package() -> None:
    code = ("import sys, ned_protocol, ned_protocol.client, ned_protocol.keys, ned_protocol.spec, "
            "ned_protocol.examples\n"
            "banned = {'torch', 'numpy', 'ned_core', 'ned_engine', 'cv2', 'OpenImageIO'}\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & banned))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_no_pickle_anywhere() -> None:
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any("pickle" in n for n in names), path
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"send_pyobj", "recv_pyobj", "loads"}, (path, node.attr)


def test_sources_parse_as_python_3_9() -> None:
    for path in MODULES:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


def test_public_api() -> None:
    assert set(ned_protocol.__all__) == {
        "MESSAGES", "PROTOCOL_VERSION", "Client", "Event", "NedError", "ProtocolError", "__version__",
        "build", "decode", "encode", "from_code", "validate"}
    for name in ned_protocol.__all__:
        assert hasattr(ned_protocol, name)
    assert ned_protocol.PROTOCOL_VERSION == (1, 3)
