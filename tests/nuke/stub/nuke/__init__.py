"""A stub of the part of Nuke's Python API that NED's Nuke plugin uses, for tests without Nuke.

It follows the real API's names and semantics (checked against Foundry's Python reference): knob
classes with ``setValue``/``value``/``getValueAt``/``setValueAt``/``setAnimated``/``isAnimated``/
``animation(i)`` and ``AnimationCurve`` keys whose CONSTANT (step), LINEAR and SMOOTH interpolation work
as Nuke documents them (SMOOTH: Catmull-Rom slopes clamped so the curve keeps within its keys' hull, flat
at the ends and at extrema); nodes made by ``createNode`` (connected after the selected node) or
``nuke.nodes.Class(**knobs)``; Groups with ``begin()``/``end()`` and Input nodes numbered in creation
order; ``nuke.root()`` with its name, frame range, format and working space; ``executeInMainThread``
queueing calls for the main thread (the test pumps them with ``stub_process_events``, as Nuke's event
loop would); ``ProgressTask``; ``execute`` of a Write; ``message``; menus and toolbars.

What it cannot do, it fakes in the simplest honest way and says so: there is no image processing, so
``execute(write, first, last)`` copies the upstream Read's frame files (through Expression, Switch, Input
and other pass-through nodes) to the Write's pattern; a Read's format comes from its first frame's EXR
header (``ned_protocol.exr_header``); ``scriptSaveAs``/``scriptOpen`` store the node graph as JSON, not
Nuke's TCL. Stub-only helpers start with ``stub_``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import sys
import threading
from collections.abc import Callable
from typing import Any

GUI = False
INVISIBLE = 0x00000400
STARTLINE = 0x00001000
DISABLED = 0x00000080
# AnimationKey interpolation types
SMOOTH = 0
CONSTANT = 1
LINEAR = 2
CATMULL_ROM = 3
CUBIC = 4

_main_queue: queue.Queue = queue.Queue()
stub_messages: list[str] = []
stub_executed: list[tuple[str, int, int]] = []
stub_progress: list[ProgressTask] = []
stub_layers: dict[str, list[str]] = {}
_this: list[Node] = []
_frame = [1]


# -- animation --------------------------------------------------------------------------------------------
class AnimationKey:
    """A control point: ``x`` (time), ``y`` (value) and ``interpolation`` (``SMOOTH`` by default)."""

    def __init__(self, x: float, y: float, interpolation: int = SMOOTH) -> None:
        self.x, self.y, self.interpolation = float(x), float(y), interpolation

    def __repr__(self) -> str:
        return f"AnimationKey({self.x}, {self.y}, {self.interpolation})"


class AnimationCurve:
    """One animated channel of an Array_Knob."""

    def __init__(self, knob: Array_Knob, index: int) -> None:
        self._knob, self._index = knob, index
        self._keys: list[AnimationKey] = []

    def knob(self) -> Array_Knob:
        return self._knob

    def knobIndex(self) -> int:
        return self._index

    def keys(self) -> list[AnimationKey]:
        return list(self._keys)

    def size(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self._keys = []

    def setKey(self, t: float, y: float) -> AnimationKey:
        """Set a key at time ``t`` to value ``y`` (a new key interpolates SMOOTH)."""
        for key in self._keys:
            if key.x == float(t):
                key.y = float(y)
                return key
        key = AnimationKey(t, y)
        self._keys.append(key)
        self._keys.sort(key=lambda k: k.x)
        return key

    def addKey(self, keys: list[AnimationKey]) -> None:
        for key in keys:
            self.setKey(key.x, key.y).interpolation = key.interpolation

    def removeKey(self, keys: list[AnimationKey]) -> None:
        drop = {k.x for k in keys}
        self._keys = [k for k in self._keys if k.x not in drop]

    def changeInterpolation(self, keys: list[AnimationKey], type: int) -> None:
        """Change the interpolation of ``keys`` (CONSTANT, LINEAR, SMOOTH...)."""
        wanted = {k.x for k in keys}
        for key in self._keys:
            if key.x in wanted:
                key.interpolation = type

    def constant(self) -> bool:
        return len({k.y for k in self._keys}) <= 1

    def _slopes(self, i: int) -> tuple[float, float]:
        """(left, right) slope of key ``i`` from its interpolation type."""
        keys = self._keys
        key = keys[i]
        prev_ = keys[i - 1] if i > 0 else None
        next_ = keys[i + 1] if i + 1 < len(keys) else None
        left = (key.y - prev_.y) / (key.x - prev_.x) if prev_ else 0.0
        right = (next_.y - key.y) / (next_.x - key.x) if next_ else 0.0
        if key.interpolation == LINEAR:
            return (left if prev_ else right), (right if next_ else left)
        if key.interpolation == CONSTANT:
            return 0.0, 0.0
        if prev_ is None or next_ is None:  # flat at the ends (constant extrapolation)
            return 0.0, 0.0
        if (key.y - prev_.y) * (next_.y - key.y) <= 0:  # an extremum: flat, so no overshoot
            return 0.0, 0.0
        slope = (next_.y - prev_.y) / (next_.x - prev_.x)  # Catmull-Rom
        if key.interpolation == SMOOTH:  # clamped so the curve stays within its keys' hull
            limit = 3.0 * min(abs(left), abs(right))
            slope = max(-limit, min(limit, slope))
        return slope, slope

    def evaluate(self, t: float) -> float:
        """Value at time ``t``: constant before the first and after the last key."""
        keys = self._keys
        if not keys:
            return 0.0
        t = float(t)
        if t <= keys[0].x:
            return keys[0].y
        if t >= keys[-1].x:
            return keys[-1].y
        i = max(j for j in range(len(keys)) if keys[j].x <= t)
        k0, k1 = keys[i], keys[i + 1]
        if k0.interpolation == CONSTANT:
            return k0.y
        if t == k0.x:
            return k0.y
        h = k1.x - k0.x
        s = (t - k0.x) / h
        m0, m1 = self._slopes(i)[1] * h, self._slopes(i + 1)[0] * h
        return ((2 * s**3 - 3 * s**2 + 1) * k0.y + (s**3 - 2 * s**2 + s) * m0 + (-2 * s**3 + 3 * s**2) * k1.y
                + (s**3 - s**2) * m1)


# -- knobs ------------------------------------------------------------------------------------------------
class Knob:
    """A knob: name, label, tooltip, flags, the node it sits on, and an error state."""

    def __init__(self, name: str, label: str | None = None, *args: Any) -> None:
        self._name = name
        self._label = name if label is None else label
        self._tooltip = ""
        self._flags = STARTLINE
        self._node: Node | None = None
        self._enabled = True
        self.stub_errors: list[str] = []

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def setLabel(self, label: str) -> None:
        self._label = label

    def tooltip(self) -> str:
        return self._tooltip

    def setTooltip(self, text: str) -> None:
        self._tooltip = text

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def visible(self) -> bool:
        return not self.getFlag(INVISIBLE)

    def setVisible(self, visible: bool) -> None:
        (self.clearFlag if visible else self.setFlag)(INVISIBLE)

    def enabled(self) -> bool:
        return self._enabled

    def setEnabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)

    def node(self) -> Node | None:
        return self._node

    def error(self, message: str) -> None:
        """Put the knob (and its node) in error with ``message``."""
        self.stub_errors.append(message)

    def critical(self, message: str) -> None:
        self.error(message)
        stub_messages.append(message)

    def warning(self, message: str) -> None:
        pass

    def _state(self) -> Any:
        return None

    def _restore(self, state: Any) -> None:
        pass


class Array_Knob(Knob):
    """A knob holding one or more numbers, each of which may be animated."""

    _size = 1
    _default: Any = 0.0

    def __init__(self, name: str, label: str | None = None, *args: Any) -> None:
        super().__init__(name, label)
        self._values = [self._default] * self._size
        self._curves: list[AnimationCurve | None] = [None] * self._size
        self._range = (0.0, 1.0)

    def _convert(self, value: Any) -> Any:
        return float(value)

    def _indices(self, index: int) -> list[int]:
        return list(range(self._size)) if index == -1 else [index]

    def arraySize(self) -> int:
        return self._size

    def setRange(self, minimum: float, maximum: float) -> None:
        self._range = (float(minimum), float(maximum))

    def min(self) -> float:
        return self._range[0]

    def max(self) -> float:
        return self._range[1]

    def isAnimated(self, index: int = -1) -> bool:
        return any(self._curves[i] is not None for i in self._indices(index))

    def setAnimated(self, index: int = -1) -> bool:
        """Animate element ``index`` (all with -1): a key at the current frame holding the current value."""
        for i in self._indices(index):
            if self._curves[i] is None:
                curve = AnimationCurve(self, i)
                curve.setKey(frame(), self._values[i])
                self._curves[i] = curve
        return True

    def clearAnimated(self, index: int = -1) -> bool:
        for i in self._indices(index):
            curve = self._curves[i]
            if curve is not None:
                self._values[i] = self._convert(curve.evaluate(frame()))
            self._curves[i] = None
        return True

    def animation(self, chan: int, view: str | None = None) -> AnimationCurve | None:
        return self._curves[chan]

    def animations(self, view: str | None = None) -> list[AnimationCurve]:
        return [c for c in self._curves if c is not None]

    def setValueAt(self, value: float, time: float, index: int = -1, view: str | None = None) -> bool:
        """Set a key at ``time``; a knob that is not animated becomes animated."""
        for i in self._indices(index):
            if self._curves[i] is None:
                self._curves[i] = AnimationCurve(self, i)
            self._curves[i].setKey(time, float(value))
        return True

    def setKeyAt(self, time: float, index: int = -1, view: str | None = None) -> None:
        for i in self._indices(index):
            self.setValueAt(self.getValueAt(time, i), time, i)

    def getValueAt(self, time: float, index: int = -1, view: str | None = None) -> Any:
        """The value at ``time``: the curve's where animated, else the constant value. Index -1 on a
        multi-element knob returns the list."""
        if index == -1 and self._size > 1:
            return [self.getValueAt(time, i) for i in range(self._size)]
        i = 0 if index == -1 else index
        curve = self._curves[i]
        return self._convert(curve.evaluate(time)) if curve is not None else self._values[i]

    def valueAt(self, time: float, index: int = -1, view: str | None = None) -> Any:
        return self.getValueAt(time, index)

    def value(self, index: int = -1, view: str | None = None, time: float | None = None) -> Any:
        return self.getValueAt(frame() if time is None else time, index)

    def getValue(self, index: int = -1) -> Any:
        return self.value(index)

    def setValue(self, value: Any, index: int = -1, time: float | None = None, view: str | None = None) -> bool:
        """Set the value (a list sets each element); on an animated element it sets a key at the current
        frame, as Nuke does."""
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                self.setValue(v, i)
            return True
        for i in self._indices(index):
            if self._curves[i] is not None:
                self._curves[i].setKey(frame() if time is None else time, float(value))
            else:
                self._values[i] = self._convert(value)
        return True

    def _state(self) -> Any:
        return {"values": self._values,
                "curves": [None if c is None else [[k.x, k.y, k.interpolation] for k in c.keys()]
                           for c in self._curves]}

    def _restore(self, state: Any) -> None:
        self._values = list(state["values"])
        for i, keys in enumerate(state["curves"]):
            if keys is None:
                self._curves[i] = None
            else:
                curve = self._curves[i] = AnimationCurve(self, i)
                curve.addKey([AnimationKey(*k) for k in keys])


class Double_Knob(Array_Knob):
    pass


class Int_Knob(Array_Knob):
    _default = 0

    def _convert(self, value: Any) -> Any:
        return int(round(float(value)))


class Boolean_Knob(Array_Knob):
    _default = False

    def _convert(self, value: Any) -> Any:
        return bool(value)


class ColorChip_Knob(Int_Knob):
    pass


class XY_Knob(Array_Knob):
    _size = 2


class String_Knob(Knob):
    """A knob holding text."""

    def __init__(self, name: str, label: str | None = None, text: str = "") -> None:
        super().__init__(name, label)
        self._text = str(text)

    def value(self) -> str:
        return self._text

    def getText(self) -> str:
        return self._text

    def setValue(self, text: Any) -> None:
        self._text = str(text)

    def evaluate(self) -> str:
        return self._text

    def _state(self) -> Any:
        return self._text

    def _restore(self, state: Any) -> None:
        self._text = state


class File_Knob(String_Knob):
    pass


class Text_Knob(Knob):
    """A label (with text) or, with no text, a divider line."""

    def __init__(self, name: str, label: str | None = None, text: str = "") -> None:
        super().__init__(name, label)
        self._text = str(text)

    def value(self) -> str:
        return self._text

    def setValue(self, text: Any) -> None:
        self._text = str(text)

    def _state(self) -> Any:
        return self._text

    def _restore(self, state: Any) -> None:
        self._text = state


class Tab_Knob(Knob):
    pass


class Enumeration_Knob(Knob):
    """A menu: ``value()`` is the chosen entry's name, ``getValue()`` its index."""

    def __init__(self, name: str, label: str | None = None, values: list[str] | None = None) -> None:
        super().__init__(name, label)
        self._entries = list(values or [])
        self._chosen = 0

    def values(self) -> list[str]:
        return list(self._entries)

    def setValues(self, values: list[str]) -> None:
        self._entries = list(values)
        self._chosen = min(self._chosen, max(len(self._entries) - 1, 0))

    def numValues(self) -> int:
        return len(self._entries)

    def enumName(self, n: int) -> str:
        return self._entries[n]

    def value(self) -> str:
        return self._entries[self._chosen] if self._entries else ""

    def getValue(self) -> float:
        return float(self._chosen)

    def setValue(self, value: Any) -> None:
        if isinstance(value, str):
            if value not in self._entries:
                raise ValueError(f"{self._name}: invalid value {value!r}")
            self._chosen = self._entries.index(value)
        else:
            if not 0 <= int(value) < len(self._entries):
                raise ValueError(f"{self._name}: index {value} out of range")
            self._chosen = int(value)

    def _state(self) -> Any:
        return self.value()

    def _restore(self, state: Any) -> None:
        if state in self._entries:
            self.setValue(state)


class PyScript_Knob(Knob):
    """A button running Python; ``nuke.thisNode()`` is its node while it runs."""

    def __init__(self, name: str, label: str | None = None, command: str = "") -> None:
        super().__init__(name, label)
        self._command = command

    def command(self) -> str:
        return self._command

    def setCommand(self, command: str) -> None:
        self._command = command

    def execute(self) -> None:
        _this.append(self._node)
        try:
            exec(self._command, {"nuke": sys.modules[__name__]})
        finally:
            _this.pop()


class Script_Knob(Knob):
    """A button running a built-in action (a Read's ``reload``)."""

    def __init__(self, name: str, label: str | None = None, action: Callable[[], None] | None = None) -> None:
        super().__init__(name, label)
        self._action = action

    def execute(self) -> None:
        if self._action is not None:
            self._action()


class Layer:
    """``nuke.Layer(name, channels)`` declares a layer; declaring the same channels again is harmless."""

    def __init__(self, name: str, channels: list[str]) -> None:
        self._name = name
        self._channels = list(channels)
        stub_layers[name] = sorted(set(stub_layers.get(name, [])) | set(channels))

    def name(self) -> str:
        return self._name

    def channels(self) -> list[str]:
        return list(self._channels)


def layers() -> list[str]:
    return ["rgba", *stub_layers]


# -- nodes ------------------------------------------------------------------------------------------------
READ_COLORSPACES = ["default (linear)", "linear", "sRGB", "rec709", "Cineon", "Gamma1.8", "Gamma2.2", "Panalog",
                    "REDLog", "AlexaV3LogC", "raw", "Utility/Linear Rec.709 (sRGB)", "Utility/ACEScg",
                    "Utility/sRGB Encoded Rec.709 (sRGB)"]
"""A Read's colourspace menu: nuke-default's names plus a few OCIO v2 ones under a family path."""


class Node:
    """Any node: knobs, inputs, name, the Group it lives in."""

    def __init__(self, class_name: str, parent: Group | None) -> None:
        self._class = class_name
        self._parent = parent
        self._knobs: dict[str, Knob] = {}
        self._inputs: list[Node | None] = []
        self.stub_selected = False
        for knob in (String_Knob("name"), String_Knob("label"), ColorChip_Knob("tile_color"),
                     Int_Knob("xpos"), Int_Knob("ypos"), Boolean_Knob("disable")):
            self.addKnob(knob)
        if parent is not None:
            self["name"].setValue(parent._unique(class_name + "1"))
            parent._children.append(self)

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self["name"].value()

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        """Rename; with ``uncollide`` a taken name gets the next free number."""
        if self._parent is not None:
            taken = {n.name() for n in self._parent._children if n is not self}
            if name in taken:
                if not uncollide:
                    raise ValueError(f"name {name!r} is already in use")
                name = self._parent._unique(name)
        self["name"].setValue(name)

    def fullName(self) -> str:
        if self._parent is None or self._parent is _root[0]:
            return self.name()
        return f"{self._parent.fullName()}.{self.name()}"

    def parent(self) -> Group | None:
        return self._parent

    def knob(self, name: str) -> Knob | None:
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def addKnob(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob.name()] = knob

    def removeKnob(self, knob: Knob) -> None:
        self._knobs.pop(knob.name(), None)

    def input(self, i: int) -> Node | None:
        return self._inputs[i] if i < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    def setInput(self, i: int, node: Node | None) -> bool:
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def dependencies(self) -> list[Node]:
        return [n for n in self._inputs if n is not None]

    def error(self) -> bool:
        """True when any knob of the node is in error."""
        return any(k.stub_errors for k in self._knobs.values())

    def showControlPanel(self) -> None:
        pass

    def setSelected(self, selected: bool) -> None:
        self.stub_selected = bool(selected)

    def isSelected(self) -> bool:
        return self.stub_selected

    def _upstream(self) -> Node | None:
        """The node whose image this one passes on (the stub has no image processing)."""
        return self.input(0)

    def firstFrame(self) -> int:
        up = self._upstream()
        return up.firstFrame() if up is not None else root().firstFrame()

    def lastFrame(self) -> int:
        up = self._upstream()
        return up.lastFrame() if up is not None else root().lastFrame()

    def width(self) -> int:
        up = self._upstream()
        return up.width() if up is not None else root().width()

    def height(self) -> int:
        up = self._upstream()
        return up.height() if up is not None else root().height()


class Group(Node):
    """A node holding nodes; ``begin()`` makes it the context new nodes go into, ``end()`` leaves it."""

    def __init__(self, class_name: str = "Group", parent: Group | None = None) -> None:
        self._children: list[Node] = []
        super().__init__(class_name, parent)

    def _unique(self, name: str) -> str:
        taken = {n.name() for n in self._children}
        if name not in taken:
            return name
        stem = re.sub(r"\d+$", "", name)
        number = 1
        while f"{stem}{number}" in taken:
            number += 1
        return f"{stem}{number}"

    def begin(self) -> Group:
        _context.append(self)
        return self

    def end(self) -> None:
        if len(_context) > 1 and _context[-1] is self:
            _context.pop()

    def nodes(self) -> list[Node]:
        return list(self._children)

    def node(self, name: str) -> Node | None:
        for child in self._children:
            if child.name() == name:
                return child
        return None

    def _upstream(self) -> Node | None:
        for child in self._children:
            if child.Class() == "Output":
                return child.input(0)
        return self.input(0)


class Root(Group):
    """``nuke.root()``: the script, its name (the .nk path; "Root" when unsaved), range, format."""

    def __init__(self) -> None:
        super().__init__("Root", None)
        self["name"].setValue("Root")
        for name, value in (("first_frame", 1), ("last_frame", 100), ("stub_width", 1920), ("stub_height", 1080)):
            knob = Int_Knob(name)
            knob.setValue(value)
            self.addKnob(knob)
        lut = Enumeration_Knob("workingSpaceLUT", "working space", ["linear", "sRGB", "rec709"])
        self.addKnob(lut)

    def name(self) -> str:
        return self["name"].value()

    def firstFrame(self) -> int:
        return int(self["first_frame"].value())

    def lastFrame(self) -> int:
        return int(self["last_frame"].value())

    def width(self) -> int:
        return int(self["stub_width"].value())

    def height(self) -> int:
        return int(self["stub_height"].value())


class Input(Node):
    """A Group's input: passes on the Group's input ``number`` (Inputs are numbered in creation order)."""

    def __init__(self, class_name: str, parent: Group | None) -> None:
        super().__init__(class_name, parent)
        number = Int_Knob("number")
        number.setValue(sum(1 for n in parent._children if n.Class() == "Input") - 1 if parent else 0)
        self.addKnob(number)

    def _upstream(self) -> Node | None:
        return self._parent.input(int(self["number"].value())) if self._parent is not None else None


class Switch(Node):
    def __init__(self, class_name: str, parent: Group | None) -> None:
        super().__init__(class_name, parent)
        self.addKnob(Int_Knob("which"))

    def _upstream(self) -> Node | None:
        return self.input(int(self["which"].value()))


class Expression(Node):
    def __init__(self, class_name: str, parent: Group | None) -> None:
        super().__init__(class_name, parent)
        for i, channel in enumerate("rgba"):
            self.addKnob(String_Knob(f"expr{i}", channel))


def _frame_file(pattern: str, number: int) -> str:
    match = re.search(r"#+", pattern)
    if match:
        return pattern[:match.start()] + f"{number:0{len(match.group(0))}d}" + pattern[match.end():]
    match = re.search(r"%(0\d+)?d", pattern)
    if match:
        return pattern[:match.start()] + (pattern[match.start():match.end()] % number) + pattern[match.end():]
    return pattern


class Read(Node):
    """A Read: ``file`` (a ``####``/``%04d`` pattern), ``first``/``last``, ``colorspace``, ``on_error``,
    ``reload``. Its format comes from its first frame's EXR header."""

    def __init__(self, class_name: str, parent: Group | None) -> None:
        super().__init__(class_name, parent)
        self.stub_reloads = 0
        self.addKnob(File_Knob("file"))
        for name in ("first", "last", "origfirst", "origlast"):
            knob = Int_Knob(name)
            knob.setValue(1)
            self.addKnob(knob)
        self.addKnob(Enumeration_Knob("colorspace", "Input Transform", READ_COLORSPACES))
        self.addKnob(Enumeration_Knob("on_error", "missing frames", ["error", "black", "checkerboard",
                                                                       "nearest frame"]))
        self.addKnob(Script_Knob("reload", "reload", self._reload))

    def _reload(self) -> None:
        self.stub_reloads += 1

    def _upstream(self) -> Node | None:
        return None

    def firstFrame(self) -> int:
        return int(self["first"].value())

    def lastFrame(self) -> int:
        return int(self["last"].value())

    def stub_frame_file(self, number: int) -> str:
        return _frame_file(self["file"].value(), number)

    def stub_frames_on_disk(self) -> list[int]:
        return [f for f in range(self.firstFrame(), self.lastFrame() + 1) if os.path.exists(self.stub_frame_file(f))]

    def _window(self) -> tuple[int, int] | None:
        from ned_protocol.exr_header import read_header

        path = self.stub_frame_file(self.firstFrame())
        if not path.lower().endswith(".exr") or not os.path.exists(path):
            return None
        x0, y0, x1, y1 = read_header(path)["displayWindow"]
        return x1 - x0 + 1, y1 - y0 + 1

    def width(self) -> int:
        window = self._window()
        return window[0] if window else root().width()

    def height(self) -> int:
        window = self._window()
        return window[1] if window else root().height()


class Write(Node):
    def __init__(self, class_name: str, parent: Group | None) -> None:
        super().__init__(class_name, parent)
        self.addKnob(File_Knob("file"))
        self.addKnob(Enumeration_Knob("file_type", "file type", ["", "exr", "dpx", "tiff", "png", "jpeg", "mov"]))
        self.addKnob(Enumeration_Knob("channels", "channels", ["rgb", "rgba", "alpha", "all"]))
        self.addKnob(Enumeration_Knob("colorspace", "Output Transform", ["default (linear)", "linear", "sRGB",
                                                                          "rec709"]))
        self.addKnob(Boolean_Knob("create_directories", "create directories"))


_CLASSES: dict[str, type] = {"Group": Group, "Input": Input, "Switch": Switch, "Expression": Expression,
                             "Read": Read, "Write": Write}
_root: list[Root] = [Root()]
_context: list[Group] = [_root[0]]


def _make(class_name: str, knobs: dict[str, Any] | None = None, inputs: list[Node] | None = None) -> Node:
    parent = _context[-1]
    cls = _CLASSES.get(class_name, Node)
    node = cls(class_name, parent) if cls is not Group else Group(class_name, parent)
    for name, value in (knobs or {}).items():
        if name == "name":
            node.setName(value)
        else:
            node[name].setValue(value)
    for i, upstream in enumerate(inputs or []):
        node.setInput(i, upstream)
    return node


class _NodeFactory:
    """``nuke.nodes.Class(name=..., inputs=[...], knob=value...)``: a node, not connected to the selection."""

    def __getattr__(self, class_name: str) -> Callable[..., Node]:
        if class_name.startswith("_"):
            raise AttributeError(class_name)

        def make(**kwargs: Any) -> Node:
            inputs = kwargs.pop("inputs", None)
            return _make(class_name, kwargs, inputs)

        return make


nodes = _NodeFactory()


def createNode(node: str, args: str = "", inpanel: bool = True) -> Node:
    """A new node in the current context, connected after the selected node (which it replaces as the
    selection), as the Node graph does."""
    selected = [n for n in _context[-1].nodes() if n.isSelected()]
    made = _make(node)
    if selected:
        made.setInput(0, selected[-1])
    for other in _context[-1].nodes():
        other.setSelected(other is made)
    return made


def root() -> Root:
    return _root[0]


def thisNode() -> Node:
    return _this[-1] if _this else _context[-1]


def thisGroup() -> Group:
    return _context[-1]


def frame() -> int:
    return _frame[0]


def stub_set_frame(number: int) -> None:
    _frame[0] = int(number)


def toNode(name: str) -> Node | None:
    """The node called ``name`` in the current context (a dotted name is a path from the root)."""
    if "." in name:
        group: Node | None = _root[0]
        for part in name.split("."):
            group = group.node(part) if isinstance(group, Group) else None
        return group
    return _context[-1].node(name)


def allNodes(filter: str | None = None, group: Group | None = None) -> list[Node]:
    return [n for n in (group or _context[-1]).nodes() if filter is None or n.Class() == filter]


def selectedNode() -> Node:
    chosen = [n for n in _context[-1].nodes() if n.isSelected()]
    if not chosen:
        raise ValueError("no node selected")
    return chosen[-1]


def delete(node: Node) -> None:
    parent = node.parent()
    if parent is not None and node in parent._children:
        parent._children.remove(node)
    for other in (parent.nodes() if parent is not None else []):
        other._inputs = [None if n is node else n for n in other._inputs]


def filename(node: Node, type: int | None = None) -> str:
    """The node's file knob (the stub evaluates no TCL)."""
    return node["file"].value()


def _source_read(node: Node | None) -> Read | None:
    seen = 0
    while node is not None and seen < 1000:
        if isinstance(node, Read):
            return node
        node = node._upstream()
        seen += 1
    return None


def execute(node: Node | str, start: int, end: int, incr: int = 1, views: list[str] | None = None) -> None:
    """Render a Write over ``start..end``. The stub's only 'renderer' copies the upstream Read's files."""
    write = toNode(node) if isinstance(node, str) else node
    if write is None or write.Class() != "Write":
        raise ValueError("execute: not a Write node")
    read = _source_read(write.input(0))
    if read is None:
        raise RuntimeError(f"{write.name()}: nothing to render (the stub renders only from a Read upstream)")
    pattern = write["file"].value()
    for number in range(int(start), int(end) + 1, int(incr)):
        source = read.stub_frame_file(number)
        if not os.path.exists(source):
            raise RuntimeError(f"{read.name()}: Read error: {source}: No such file or directory")
        target = _frame_file(pattern, number)
        if write["create_directories"].value():
            os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
    stub_executed.append((write.name(), int(start), int(end)))


# -- threads, progress, messages -------------------------------------------------------------------------
def executeInMainThread(call: Callable[..., Any], args: Any = (), kwargs: dict | None = None) -> None:
    """Queue ``call`` for the main thread and return at once."""
    if not isinstance(args, tuple):
        args = (args,)
    _main_queue.put((call, args, kwargs or {}))


def executeInMainThreadWithResult(call: Callable[..., Any], args: Any = (), kwargs: dict | None = None) -> Any:
    if threading.current_thread() is threading.main_thread():
        return call(*(args if isinstance(args, tuple) else (args,)), **(kwargs or {}))
    done = threading.Event()
    box: list[Any] = []

    def run() -> None:
        box.append(call(*(args if isinstance(args, tuple) else (args,)), **(kwargs or {})))
        done.set()

    executeInMainThread(run)
    done.wait()
    return box[0]


def stub_process_events(timeout: float = 0.0) -> int:
    """Run the queued main-thread calls (waiting up to ``timeout`` for the first); returns how many ran.
    Must be called from the main thread, as Nuke's event loop runs them there."""
    assert threading.current_thread() is threading.main_thread()
    ran = 0
    try:
        item = _main_queue.get(timeout=timeout) if timeout > 0 else _main_queue.get_nowait()
    except queue.Empty:
        return 0
    while True:
        call, args, kwargs = item
        call(*args, **kwargs)
        ran += 1
        try:
            item = _main_queue.get_nowait()
        except queue.Empty:
            return ran


class ProgressTask:
    """A progress bar with a Cancel button; it goes away when the object is destroyed."""

    def __init__(self, name: str = "") -> None:
        self.stub_name = name
        self.stub_messages: list[str] = []
        self.stub_values: list[int] = []
        self.stub_cancelled = False
        stub_progress.append(self)

    def setMessage(self, message: str) -> None:
        self.stub_messages.append(message)

    def setProgress(self, value: int) -> None:
        self.stub_values.append(int(value))

    def isCancelled(self) -> bool:
        return self.stub_cancelled

    def stub_cancel(self) -> None:
        """What pressing the task's Cancel button does."""
        self.stub_cancelled = True


def message(text: str) -> None:
    stub_messages.append(text)


def tprint(*values: Any) -> None:
    print(*values)


# -- menus -----------------------------------------------------------------------------------------------
class Menu:
    def __init__(self, name: str) -> None:
        self._name = name
        self._items: list[Any] = []

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str, icon: str = "", **kwargs: Any) -> Menu:
        found = self.findItem(name)
        if isinstance(found, Menu):
            return found
        menu = Menu(name)
        self._items.append(menu)
        return menu

    def addCommand(self, name: str, command: Any = "", shortcut: str = "", icon: str = "", **kwargs: Any) -> MenuItem:
        item = MenuItem(name, command)
        self._items.append(item)
        return item

    def findItem(self, name: str) -> Any:
        for item in self._items:
            if item.name() == name:
                return item
        return None

    def items(self) -> list[Any]:
        return list(self._items)


class MenuItem:
    def __init__(self, name: str, command: Any) -> None:
        self._name, self._command = name, command

    def name(self) -> str:
        return self._name

    def script(self) -> Any:
        return self._command

    def invoke(self) -> None:
        if callable(self._command):
            self._command()
        else:
            exec(self._command, {"nuke": sys.modules[__name__]})


_menus: dict[str, Menu] = {}


def menu(name: str) -> Menu:
    return _menus.setdefault(name, Menu(name))


def toolbar(name: str) -> Menu:
    return menu(name)


def pluginAddPath(path: str) -> None:
    if path not in sys.path:
        sys.path.insert(0, path)


# -- scripts ---------------------------------------------------------------------------------------------
def _dump(group: Group) -> list[dict]:
    out = []
    for node in group.nodes():
        entry = {"class": node.Class(), "name": node.name(),
                 "inputs": [None if n is None else n.name() for n in node._inputs],
                 "knobs": {name: [type(k).__name__, k.label(), k._state(), getattr(k, "_command", None),
                                  getattr(k, "_entries", None), k._flags] for name, k in node.knobs().items()}}
        if isinstance(node, Group):
            entry["children"] = _dump(node)
        out.append(entry)
    return out


def _load(group: Group, entries: list[dict]) -> None:
    made = {}
    for entry in entries:
        group.begin()
        try:
            node = _make(entry["class"])
            node.setName(entry["name"], uncollide=False)
        finally:
            group.end()
        for name, (cls, label, state, command, entries_, flags) in entry["knobs"].items():
            knob = node.knob(name)
            if knob is None:
                knob_class = getattr(sys.modules[__name__], cls)
                knob = (knob_class(name, label, command or "") if cls == "PyScript_Knob" else
                        knob_class(name, label, entries_ or []) if cls == "Enumeration_Knob" else
                        knob_class(name, label))
                node.addKnob(knob)
            knob._flags = flags
            knob._restore(state)
        if isinstance(node, Group):
            _load(node, entry.get("children", []))
        made[entry["name"]] = (node, entry["inputs"])
    for node, inputs in made.values():
        for i, name in enumerate(inputs):
            node.setInput(i, None if name is None else made[name][0])


def scriptSaveAs(filename: str, overwrite: int = -1) -> None:
    """Save the script (the stub writes its node graph as JSON) and take its name."""
    root()["name"].setValue(os.path.abspath(filename))
    with open(filename, "w") as stream:
        json.dump({"stub_nuke_script": 1, "root": {name: k._state() for name, k in root().knobs().items()},
                   "nodes": _dump(root())}, stream)


def scriptClear() -> None:
    _root[0] = Root()
    _context[:] = [_root[0]]


def scriptOpen(filename: str) -> None:
    """Open a script saved by ``scriptSaveAs`` (replacing the current one, as ``nuke -t`` starts empty)."""
    with open(filename) as stream:
        data = json.load(stream)
    scriptClear()
    _load(root(), data["nodes"])
    for name, state in data["root"].items():
        if root().knob(name) is not None:
            root()[name]._restore(state)
    root()["name"].setValue(os.path.abspath(filename))


def stub_reset() -> None:
    """A fresh, empty session (tests call this between cases)."""
    scriptClear()
    while not _main_queue.empty():
        _main_queue.get_nowait()
    stub_messages.clear()
    stub_executed.clear()
    stub_progress.clear()
    stub_layers.clear()
    _menus.clear()
    _this.clear()
    _frame[0] = 1
