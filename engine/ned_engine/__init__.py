"""NED engine: the ``ned`` command line, and (later) the headless server, job queue and farm runner."""

__version__ = "0.1.0"
