"""docs/install.md stays true: every option its command lines use is one install.py accepts."""

from __future__ import annotations

import re
import subprocess
import sys

from .helpers import INSTALL, ROOT


def test_documented_options_exist():
    text = (ROOT / "docs" / "install.md").read_text()
    used: dict[str, set[str]] = {}
    for component, rest in re.findall(r"installers/install\.py (nuke|blender|engine)([^\n`]*)", text):
        used.setdefault(component, set()).update(re.findall(r"(--[a-z][a-z-]*)", rest.split("#")[0]))
    assert set(used) == {"nuke", "blender", "engine"}
    for component, options in used.items():
        helptext = subprocess.run([sys.executable, str(INSTALL), component, "--help"], capture_output=True,
                                  text=True, check=True).stdout
        accepted = set(re.findall(r"(--[a-z][a-z-]*)", helptext))
        # --serve-args' own value ("--workers 2 ...") is ned-engine's, not install.py's.
        assert options - accepted <= {"--workers", "--allow-root"}, (component, options - accepted)
