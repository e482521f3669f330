"""The one module that calls ``nuke``: builds the NeuralEmotionDirector Group, reads its knobs and inputs
into ``logic.job.NodeValues``, renders non-Read inputs with Nuke's own Write, starts the job runner and
draws what it reports (status line, ProgressTask, the internal Read) on Nuke's main thread.

Everything that can be decided without Nuke lives in ``ned_nuke.logic`` and is tested there; this module
only moves values between Nuke and those functions. It is imported lazily (``ned_nuke`` itself never
imports ``nuke``), by ``menu.py`` and by the knobs' button commands.

Imports ``nuke`` and ``ned_protocol``; never torch, numpy, ned_core or ned_engine.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import nuke
from ned_protocol.errors import InvalidOptionError, NedError
from ned_protocol.schema import EMOTIONS, OUTPUT_LAYERS, new_id

from ned_nuke.logic import colorspace as colour
from ned_nuke.logic import job as jobs
from ned_nuke.logic import knobs, local_engine, paths
from ned_nuke.logic.events import JobStatus
from ned_nuke.logic.runner import JobRunner, ProgressSink

logger = logging.getLogger(__name__)
LAYERS = {"ned": ["ned.matte"], "stmap": ["stmap.u", "stmap.v"]}
"""The layers NED's EXRs carry besides RGBA, declared so Nuke offers them before the first frame."""
_MASK_EXPRESSIONS = {"alpha": "a", "red": "r", "green": "g", "blue": "b"}
ERROR_COLOUR = 0xC03030FF
_RUNNERS: dict[str, JobRunner] = {}
_SHOWN: dict[str, tuple[int, str | None]] = {}  # node → (frames shown, colourspace set) of its job


# -- building the node --------------------------------------------------------------------------------
def _knob(definition: knobs.KnobDef) -> Any:
    kind, name, label = definition.kind, definition.name, definition.label
    if kind == "tab":
        knob = nuke.Tab_Knob(name, label)
    elif kind in ("string", "hidden"):
        knob = nuke.String_Knob(name, label)
        knob.setValue(str(definition.default or ""))
        if kind == "hidden":
            knob.setFlag(nuke.INVISIBLE)
    elif kind == "file":
        knob = nuke.File_Knob(name, label)
        knob.setValue(str(definition.default or ""))
    elif kind == "button":
        knob = nuke.PyScript_Knob(name, label, definition.command)
    elif kind == "enum":
        knob = nuke.Enumeration_Knob(name, label, list(definition.values))
        knob.setValue(definition.default)
    elif kind == "bool":
        knob = nuke.Boolean_Knob(name, label)
        knob.setValue(bool(definition.default))
    elif kind == "xy":
        knob = nuke.XY_Knob(name, label)
        knob.setValue(float(definition.default[0]), 0)
        knob.setValue(float(definition.default[1]), 1)
    elif kind == "double":
        knob = nuke.Double_Knob(name, label)
        if definition.range is not None:
            knob.setRange(*definition.range)
        knob.setValue(float(definition.default))
    elif kind == "int":
        knob = nuke.Int_Knob(name, label)
        knob.setValue(int(definition.default))
    elif kind in ("text", "divider"):
        knob = nuke.Text_Knob(name, label, "" if definition.default is None else str(definition.default))
    else:
        raise ValueError(f"unknown knob kind {kind!r}")
    if definition.tooltip:
        knob.setTooltip(definition.tooltip)
    if not definition.new_line:
        knob.clearFlag(nuke.STARTLINE)
    return knob


def _declare_layers() -> None:
    for layer, channels in LAYERS.items():
        try:
            nuke.Layer(layer, channels)
        except Exception:  # already declared with these channels (Nuke raises on a redeclaration)
            pass


def build(group: Any) -> Any:
    """Turn an empty Group into a NeuralEmotionDirector: knobs, the Source/Mask inputs, the internal
    Read of the results and a Switch that shows the Source until the first frame arrives."""
    for definition in knobs.KNOBS:
        group.addKnob(_knob(definition))
    _declare_layers()
    group.begin()
    try:
        for leftover in group.nodes():  # whatever a new Group came with (Nuke may add Input1/Output1)
            nuke.delete(leftover)
        source = nuke.nodes.Input(name=knobs.INPUTS[0])
        nuke.nodes.Input(name=knobs.INPUTS[1])
        read = nuke.nodes.Read(name=knobs.RESULT_READ)
        read["on_error"].setValue("black")  # frames not written yet show black, never an error
        switch = nuke.nodes.Switch(name="NEDSwitch", inputs=[source, read])
        switch["which"].setValue(0)
        nuke.nodes.Output(inputs=[switch])
    finally:
        group.end()
    return group


def create_node() -> Any:
    """Create a NeuralEmotionDirector where Nuke puts new nodes (after the selected one)."""
    group = nuke.createNode("Group", inpanel=False)
    group.setName(knobs.NODE_CLASS + "1")
    build(group)
    return group


def is_ned_node(node: Any) -> bool:
    """True for a NeuralEmotionDirector Group."""
    return node is not None and node.knob("ned_node") is not None and node["ned_node"].value() == knobs.NODE_CLASS


def _inner(group: Any, name: str) -> Any:
    group.begin()
    try:
        return nuke.toNode(name)
    finally:
        group.end()


# -- reading the node -----------------------------------------------------------------------------------
def _source(node: Any) -> Any:
    source = node.input(0)
    if source is None:
        raise InvalidOptionError(f"{node.name()}: connect the Source input", field="Source")
    return source


def frame_range(node: Any) -> tuple[int, int]:
    """The range the node processes (the Source's unless the artist set one)."""
    source = _source(node)
    return paths.frame_range(bool(node["use_input_range"].value()), (int(source.firstFrame()),
                             int(source.lastFrame())), int(node["first"].value()), int(node["last"].value()))


def output_pattern(node: Any) -> str:
    """The output knob, or the next version folder beside the script when it is empty."""
    value = node["output"].value().strip()
    return paths.check_output(value) if value else paths.default_output(nuke.root().name(), node.name())


def _working_space() -> str | None:
    knob = nuke.root().knob("workingSpaceLUT")
    return colour.engine_name(knob.value()) if knob is not None else None


def _render(node: Any, index: int, pattern: str, span: tuple[int, int], channel: str = "") -> None:
    """Render the node's input ``index`` to an EXR sequence with Nuke's own Write (``channel``: move that
    channel to alpha first, for a mask)."""
    os.makedirs(os.path.dirname(pattern), exist_ok=True)
    node.begin()
    made = []
    try:
        upstream = nuke.toNode(knobs.INPUTS[index])
        if channel:
            upstream = nuke.nodes.Expression(inputs=[upstream])
            upstream["expr3"].setValue(_MASK_EXPRESSIONS[channel])
            made.append(upstream)
        write = nuke.nodes.Write(inputs=[upstream])
        made.append(write)
        write["file"].setValue(pattern)
        write["file_type"].setValue("exr")
        write["channels"].setValue("rgba")
        working = nuke.root()["workingSpaceLUT"].value() if nuke.root().knob("workingSpaceLUT") else None
        if working:
            try:
                write["colorspace"].setValue(working)  # write the working space as it is: no conversion
            except ValueError:  # a config whose Write menu names it differently: EXR's default is linear too
                logger.info("the Write's colourspace menu has no %r; keeping its default", working)
        nuke.execute(write, span[0], span[1])
    finally:
        for temporary in reversed(made):
            nuke.delete(temporary)
        node.end()


def plate(node: Any, output: str, span: tuple[int, int], render: bool = True) -> jobs.Plate:
    """What the engine reads: a Read's own files and colourspace, else the Source rendered to EXR."""
    source = _source(node)
    if source.Class() == "Read":
        path = nuke.filename(source)
        start = int(source["first"].value()) if paths.is_movie(path) else None
        return jobs.Plate(path, colour.engine_name(source["colorspace"].value()), start)
    pattern = paths.render_pattern(output, "source")
    if render:
        _render(node, 0, pattern, span)
    return jobs.Plate(pattern, _working_space())


def mask(node: Any, output: str, span: tuple[int, int], render: bool = True) -> str | None:
    """The mask sequence the engine reads (None without a Mask input)."""
    source = node.input(1)
    if source is None:
        return None
    channel = node["mask_channel"].value()
    if source.Class() == "Read" and channel == "alpha" and not paths.is_movie(nuke.filename(source)):
        return nuke.filename(source)
    pattern = paths.render_pattern(output, "mask")
    if render:
        _render(node, 1, pattern, span, channel)
    return pattern


def node_values(node: Any, render: bool = True) -> jobs.NodeValues:
    """Everything the job needs from ``node``; renders non-Read inputs when ``render``.

    Raises
    ------
    NedError
        A knob or input the job cannot be made from (``InvalidOptionError`` with the knob as field).
    """
    if not is_ned_node(node):
        raise InvalidOptionError(f"{node.name() if node is not None else 'no node'} is not a "
                                 f"{knobs.NODE_CLASS}", field="node")
    span = frame_range(node)
    output = output_pattern(node)
    samplers = {label: node[label].getValueAt for label in EMOTIONS}
    weights, intensity = jobs.sample(samplers, node["intensity"].getValueAt, span)
    face = None
    if node["use_face"].value():
        face = (float(node["face"].getValueAt(span[0], 0)), float(node["face"].getValueAt(span[0], 1)))
    script = os.path.splitext(os.path.basename(nuke.root().name()))[0]
    mouth_knob = node["mouth_preservation"]
    # An animated mouth preservation is keyed like the emotions: sampled at every frame of the range.
    mouth = [float(mouth_knob.getValueAt(f)) for f in jobs.frames_of(span)] if mouth_knob.isAnimated() else None
    return jobs.NodeValues(
        label=f"{script} {node.name()}".strip(), plate=plate(node, output, span, render), frame_range=span,
        weights=weights, intensity=intensity, output=output,
        mouth_preservation=float(mouth_knob.getValueAt(span[0])), mouth=mouth,
        backend=node["backend"].value(), face=face, height=int(_source(node).height()),
        mask=mask(node, output, span, render),
        layers=tuple(name for name in OUTPUT_LAYERS if node[f"write_{name}"].value()))


# -- running a job --------------------------------------------------------------------------------------
class _Progress(ProgressSink):
    """``nuke.ProgressTask``, made on the runner's thread; it goes away when dropped."""

    def __init__(self, title: str) -> None:
        self.task = nuke.ProgressTask(title)

    def update(self, message: str, percent: int) -> None:
        if self.task is not None:
            self.task.setMessage(message)
            self.task.setProgress(percent)

    def cancelled(self) -> bool:
        return self.task is not None and self.task.isCancelled()

    def close(self) -> None:
        self.task = None


def _post(call: Any) -> None:
    nuke.executeInMainThread(call)


def _show_error(node: Any, code: str, message: str, popup: bool = True) -> None:
    line = f"{code}: {message}"
    node["status"].setValue(f"Failed: {line}")
    node["status"].error(line)
    node["tile_color"].setValue(ERROR_COLOUR)
    if popup and nuke.GUI:
        nuke.message(f"{node.name()}: {line}")


def _point_read(node: Any, output: str, span: tuple[int, int]) -> None:
    read = _inner(node, knobs.RESULT_READ)
    read["file"].setValue(output)
    for name in ("first", "origfirst"):
        read[name].setValue(span[0])
    for name in ("last", "origlast"):
        read[name].setValue(span[1])
    node["ned_result"].setValue(output)


def _set_colorspace(read: Any, name: str | None) -> str | None:
    """Set the Read's colourspace to the header's; returns the menu entry used (None: no match)."""
    if not name:
        return None
    entry = colour.knob_value(name, read["colorspace"].values())
    if entry is None:
        logger.warning("the Read's colourspace menu has no entry for %r", name)
        return None
    read["colorspace"].setValue(entry)
    return entry


def _on_status(name: str, status: JobStatus) -> None:
    """Draw one status on the node (main thread)."""
    node = nuke.toNode(name)
    if node is None:  # deleted while its job ran: the job goes on, nothing to draw
        return
    node["status"].setValue(status.text())
    if status.job:
        node["ned_job"].setValue(status.job)
    shown, colourspace = _SHOWN.get(name, (0, None))
    if len(status.frames) != shown or status.ended:
        read = _inner(node, knobs.RESULT_READ)
        if "colorspace" in status.detail and colourspace is None:
            colourspace = _set_colorspace(read, status.detail["colorspace"]) or ""
        if status.frames:
            _inner(node, "NEDSwitch")["which"].setValue(1)
            read["reload"].execute()
        _SHOWN[name] = (len(status.frames), colourspace)
    if status.state == "failed":
        _show_error(node, status.code or "internal", status.message)
    if status.ended:
        _RUNNERS.pop(name, None)


def process(node: Any, *, timeout: float = 10.0) -> JobRunner | None:
    """The Process button: send the node's job to its engine; returns the runner (None on an error,
    which the node then shows)."""
    name = node.fullName()
    running = _RUNNERS.get(name)
    if running is not None and running.running:
        node["status"].setValue("Already processing: press Cancel first")
        return None
    node["tile_color"].setValue(0)
    try:
        values = node_values(node)
        spec = jobs.spec(values)
        os.makedirs(os.path.dirname(values.output), exist_ok=True)
    except NedError as error:
        _show_error(node, error.code, error.message)
        return None
    except OSError as error:
        _show_error(node, "output_error", f"cannot make the output folder: {error}")
        return None
    _point_read(node, values.output, values.frame_range)
    _inner(node, "NEDSwitch")["which"].setValue(0)  # the Source until this job's first frame is written
    _SHOWN[name] = (0, None)
    runner = JobRunner(node["address"].value().strip(), spec, on_status=lambda s: _on_status(name, s),
                       post=_post, progress=lambda: _Progress(f"NED {node.name()}"), timeout=timeout,
                       key=f"{name[:100]}-{new_id()}")
    _RUNNERS[name] = runner
    node["status"].setValue("Submitting...")
    return runner.start()


def cancel(node: Any) -> threading.Thread | None:
    """The Cancel button: stop the node's job; frames already written stay.

    A job this Nuke session did not start (the script was reopened while it ran) is cancelled by its id
    (the hidden ``ned_job`` knob) from a short-lived client on a worker thread, which is returned.
    """
    runner = _RUNNERS.get(node.fullName())
    if runner is not None and runner.running:
        runner.cancel()
        node["status"].setValue("Cancelling...")
        return None
    job = node["ned_job"].value().strip()
    if not job or node["status"].value().split(":")[0] in ("Done", "Failed", "Cancelled", "idle"):
        node["status"].setValue("Nothing to cancel")
        return None
    name, address = node.fullName(), node["address"].value().strip()

    def run() -> None:
        from ned_protocol.client import Client

        try:
            with Client(address, timeout=10.0, client_name="ned-nuke") as client:
                state = client.cancel(job)
            text = f"Job {job} had already ended ({state})" if state in ("done", "failed") else \
                f"Cancelled job {job} (frames already written stay)"
        except NedError as error:
            text = f"Failed: {error.code}: {error.message}"
        _post(lambda: _set_status(name, text))

    node["status"].setValue(f"Cancelling job {job}...")
    thread = threading.Thread(target=run, name=f"ned-nuke cancel {job}", daemon=True)
    thread.start()
    return thread


def _set_status(name: str, text: str) -> None:
    node = nuke.toNode(name)
    if node is not None:
        node["status"].setValue(text)


def runner(node: Any) -> JobRunner | None:
    """The node's running job, if any."""
    return _RUNNERS.get(node.fullName())


def start_engine(node: Any = None) -> Any:
    """The "start local engine" button (or menu entry, ``node`` None): serve the node's address here."""
    address = node["address"].value().strip() if node is not None else knobs.DEFAULT_ADDRESS
    folders = [os.path.dirname(nuke.root().name()) if nuke.root().name() not in ("", "Root") else None]
    if node is not None:
        value = node["output"].value().strip()
        folders.append(os.path.dirname(value) if value else None)
        source = node.input(0)
        if source is not None and source.Class() == "Read":
            folders.append(os.path.dirname(nuke.filename(source)))
    try:
        process_ = local_engine.start(address, folders)
    except NedError as error:
        if node is not None:
            _show_error(node, error.code, error.message)
        elif nuke.GUI:
            nuke.message(f"{error.code}: {error.message}")
        return None
    if node is not None:
        node["status"].setValue(f"Local engine started at {address} (pid {process_.pid})")
    return process_


def write_farm_job(node: Any = None, path: str | None = None) -> str | None:
    """The "Write farm job" button: the node's job as JSON for ``ned-engine analyze``/``render``; returns
    its path (None on an error, which the node shows)."""
    from ned_nuke import farm

    node = node if node is not None else nuke.selectedNode()
    try:
        values = node_values(node)
        written = farm.write_job(values, path or farm.default_job_path(values.output))
    except NedError as error:
        _show_error(node, error.code, error.message)
        return None
    node["status"].setValue(f"Farm job written: {written}")
    if nuke.GUI:
        nuke.message("\n".join([f"Farm job: {written}", "", *farm.commands(written, values.frame_range)]))
    return written


def farm_values(script: str, node_name: str) -> jobs.NodeValues:
    """Open ``script`` and read node ``node_name`` (for ``python -m ned_nuke.farm`` inside ``nuke -t``)."""
    nuke.scriptOpen(script)
    node = nuke.toNode(node_name)
    if node is None:
        raise InvalidOptionError(f"{script} has no node {node_name!r}", path=script, field="node")
    return node_values(node)


# -- menus ------------------------------------------------------------------------------------------------
def install_menus() -> None:
    """The NED menu in Nuke's menu bar and the node in the Nodes toolbar (called by ``menu.py``)."""
    create = "import ned_nuke.host; ned_nuke.host.create_node()"
    menu = nuke.menu("Nuke").addMenu("NED")
    menu.addCommand(knobs.NODE_CLASS, create)
    menu.addCommand("Write farm job for selected node", "import ned_nuke.host; ned_nuke.host.write_farm_job()")
    menu.addCommand("Start local engine", "import ned_nuke.host; ned_nuke.host.start_engine()")
    nuke.toolbar("Nodes").addMenu("NED").addCommand(knobs.NODE_CLASS, create)


__all__ = ["build", "cancel", "create_node", "farm_values", "frame_range", "install_menus", "is_ned_node",
           "mask", "node_values", "output_pattern", "plate", "process", "runner", "start_engine",
           "write_farm_job"]
