"""Process one NeuralEmotionDirector node through the nuke stub against a running engine, in whichever
Python runs this file (``test_nuke_host.py`` runs it with ``$NED_NUKE_PYTHON``, e.g. a Python 3.9 like
Nuke 14's, holding only msgpack and pyzmq: the plugin needs nothing else).

Usage: python host_smoke.py PLATE_PATTERN FIRST LAST ENGINE_ADDRESS SHOT_FOLDER; prints the status line and
the internal Read's frames, exits 0 when every frame was written.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(HERE, "stub"), os.path.join(ROOT, "plugins", "nuke"), os.path.join(ROOT, "protocol")]

import nuke  # noqa: E402
from ned_nuke import host  # noqa: E402


def main() -> int:
    plate, first, last, address, shot = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    nuke.scriptSaveAs(os.path.join(shot, "smoke.nk"))
    read = nuke.nodes.Read(file=plate, first=first, last=last)
    read.setSelected(True)
    node = host.create_node()
    node["address"].setValue(address)
    node["happy"].setValueAt(0.0, first)
    node["happy"].setValueAt(1.0, last)
    node["process"].execute()
    runner = host.runner(node)
    deadline = time.monotonic() + 120
    while runner is not None and runner.running and time.monotonic() < deadline:
        nuke.stub_process_events(0.05)
    nuke.stub_process_events()
    node.begin()
    frames = nuke.toNode("NEDResult").stub_frames_on_disk()
    node.end()
    print(sys.version.split()[0], node["status"].value(), frames)
    return 0 if frames == list(range(first, last + 1)) else 1


if __name__ == "__main__":
    sys.exit(main())
