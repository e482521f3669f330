"""Build a NED shot's OpenCue job with PyOutline itself and print its Cue XML (``serialize_simple``).

Runs in the farm tools' virtual environment (tests/farm/make_venv.sh). Reads one JSON object on stdin:
``name``, ``first``, ``last``, ``chunk``, ``analyze``/``render`` (argument lists, the render one with
Cuebot's frame tokens), ``environment``, ``show``, ``shot``, ``user``, ``facility``. The test compares
this with what ``ned-engine farm --target opencue`` writes without PyOutline.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile


def main() -> int:
    request = json.load(sys.stdin)
    os.environ["HOME"] = tempfile.mkdtemp()  # PyOutline keeps sessions under $HOME; none are made here
    import outline
    import outline.cuerun
    from outline.backend import cue
    from outline.modules.shell import Shell

    job = outline.Outline(request["name"], frame_range=f"{request['first']}-{request['last']}",
                          show=request["show"], shot=request["shot"], user=request["user"])
    # PyOutline joins a Shell command's words with spaces: quote each one as a shell would need it
    analyze = Shell("analyze", command=[shlex.quote(a) for a in request["analyze"]], range=str(request["first"]),
                    chunk=1)
    render = Shell("render", command=[shlex.quote(a) for a in request["render"]],
                   range=f"{request['first']}-{request['last']}", chunk=request["chunk"])
    for layer in (analyze, render):
        for key, value in sorted(request["environment"].items()):
            layer.set_env(key, value)
        job.add_layer(layer)
    render.depend_all(analyze)
    launcher = outline.cuerun.OutlineLauncher(job, facility=request["facility"], nomail=True)
    sys.stdout.write(cue.serialize_simple(launcher))
    return 0


if __name__ == "__main__":
    sys.exit(main())
