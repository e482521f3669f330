"""Process-wide tuning: what it changes in the process (never an output bit: tests/core/test_frame_output.py)."""

from __future__ import annotations

from threadpoolctl import threadpool_info

from ned_core.process_tuning import tune_process


def test_numpys_openblas_runs_on_one_thread() -> None:
    tune_process()
    tune_process()  # idempotent
    blas = [pool for pool in threadpool_info() if pool["internal_api"] == "openblas"]
    assert blas, "numpy's wheels bundle OpenBLAS"
    assert all(pool["num_threads"] == 1 for pool in blas)
