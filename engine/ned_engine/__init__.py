"""NED engine: the ``ned`` command line (``cli``) and the headless engine (``ned-engine``, ``main``).

The engine's parts: ``server`` (the socket loop), ``workers`` (job queue and workers), ``worker_process``
(what runs in a worker process), ``ray_backend`` (workers as Ray actors), ``journal`` (SQLite), ``jobs``
(job spec → pipeline objects), ``sandbox`` (allowed roots), ``security`` (CurveZMQ, ZAP, token),
``metrics`` and ``monitor`` (counters, HTTP endpoint), ``farm`` (serverless chunks) and ``remote``
(``ned edit --engine``). See docs/engine.md.
"""

__version__ = "0.1.0"
