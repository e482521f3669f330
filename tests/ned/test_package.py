"""Import boundaries of the NED backend: torch only inside ned_core.ned's modules."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_importing_ned_core_and_the_package_does_not_import_torch():
    result = _run("import sys, ned_core, ned_core.ned; assert 'torch' not in sys.modules")
    assert result.returncode == 0, result.stderr


def test_without_torch_the_backend_says_what_to_install():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from ned_core.errors import MissingDependencyError\n"
            "try:\n    import ned_core.ned.manipulator_nets\n"
            "except MissingDependencyError as e:\n    print(e.one_line())\n")
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "missing_dependency" in result.stdout and "--ned" in result.stdout
