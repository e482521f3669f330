"""The NeuralEmotionDirector node's logic as plain functions: nothing here imports ``nuke``.

``knobs`` (the knob table), ``job`` (knob values and curve samples → JobSpec), ``paths`` (frame ranges,
default output, render folders), ``colorspace`` (Nuke's names ↔ the engine's), ``events`` (job events →
status line and progress), ``runner`` (the worker thread that talks to the engine) and ``local_engine``
(the "start local engine" button). Imports ``ned_protocol`` only; never torch, numpy, ned_core or
ned_engine.
"""
