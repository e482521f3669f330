"""Run inside real Blender: install the ned_blender extension zip with Blender's own extension system
(into a throw-away user folder: ``BLENDER_USER_RESOURCES``), enable it, and report what got registered.

    python install_extension.py -- ZIP REPORT.json
"""

from __future__ import annotations

import json
import sys

import bpy

MODULE = "bl_ext.user_default.ned_blender"


def main() -> int:
    zip_path, report_path = sys.argv[sys.argv.index("--") + 1:][:2]
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                      enable_on_install=True)
    import ned_protocol

    addon = bpy.context.preferences.addons.get(MODULE)
    strip_type = getattr(bpy.types, "Strip", None) or bpy.types.Sequence
    report = {
        "install": sorted(result),
        "enabled": addon is not None,
        "module_file": getattr(sys.modules.get(MODULE), "__file__", None),
        "protocol_file": ned_protocol.__file__,
        "preferences": type(addon.preferences).__name__ if addon is not None else None,
        "properties": [name for name in ("ned_happy", "ned_intensity", "ned_mouth_preservation", "ned")
                       if hasattr(strip_type, name)],
        "operators": [name for name in ("process", "cancel", "start_engine", "add_image_node")
                      if hasattr(bpy.ops.ned, name)],
        "panels": [name for name in ("SEQUENCER_PT_ned", "NODE_PT_ned") if hasattr(bpy.types, name)],
    }
    bpy.ops.preferences.addon_disable(module=MODULE)
    report["disabled_properties"] = hasattr(strip_type, "ned_happy")
    with open(report_path, "w") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
