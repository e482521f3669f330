"""ned_blender's host-free logic: everything the add-on decides that does not need Blender.

``frames`` (timeline frames ⇄ the plate's frame numbers), ``keys`` (sampled emotion curves → the job's
keyframes), ``job`` (a strip's settings → a schema-checked ``JobSpec``), ``paths`` (versioned output
folders and patterns), ``colour`` (an EXR's colourspace name → Blender's), ``tracker`` (a job's events →
progress, frames, outcome) and ``engine_cmd`` (the command line of a local ``ned-engine``). EXR headers
are read with ``ned_protocol.exr_header``, which the Nuke plugin shares.

Must not import ``bpy`` (plain pytest tests these modules in the project's venv) nor anything beyond the
standard library and ``ned_protocol``. Python 3.9 syntax (older Blenders' Python).
"""
