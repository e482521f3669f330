"""The extension's manifest: id, Blender range, and the wheels it names match ``plugins/blender/wheels.txt``
(the requirement lines the installer downloads) and the protocol package it bundles."""

from __future__ import annotations

import re
import tomllib

import ned_protocol

from .conftest import PLUGIN

PLATFORM_TAGS = {"linux-x64": "x86_64", "linux-arm64": "aarch64", "macos-arm64": ("arm64", "universal2"),
                 "macos-x64": ("x86_64", "universal2"), "windows-x64": "win_amd64"}


def test_manifest_names_the_extension_and_its_wheels() -> None:
    manifest = tomllib.loads((PLUGIN / "ned_blender" / "blender_manifest.toml").read_text())
    assert manifest["id"] == "ned_blender" and manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0" and manifest["schema_version"] == "1.0.0"
    wheels = manifest["wheels"]
    assert all(w.startswith("./wheels/") and w.endswith(".whl") for w in wheels)
    names = [w[len("./wheels/"):] for w in wheels]
    assert f"ned_protocol-{ned_protocol.__version__}-py3-none-any.whl" in names
    requirements = [line.strip() for line in (PLUGIN / "wheels.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert {r.split("==")[0] for r in requirements} == {"msgpack", "pyzmq"}
    for requirement in requirements:
        package, version = requirement.split("==")
        files = [n for n in names if n.startswith(f"{package}-{version}-cp311-cp311-")]
        for platform in manifest["platforms"]:
            tags = PLATFORM_TAGS[platform]
            tags = (tags,) if isinstance(tags, str) else tags
            system = {"linux": "manylinux", "macos": "macosx", "windows": "win"}[platform.split("-")[0]]
            assert any(system in f and any(re.search(rf"[_.]{t}(\.|\.whl$|_)", f) or f.endswith(f"{t}.whl")
                                             for t in tags) for f in files), (requirement, platform)


def test_legacy_add_on_info_matches_the_manifest() -> None:
    import ned_blender

    manifest = tomllib.loads((PLUGIN / "ned_blender" / "blender_manifest.toml").read_text())
    assert ned_blender.bl_info["blender"] == (4, 2, 0)
    assert ".".join(map(str, ned_blender.bl_info["version"])) == manifest["version"]
