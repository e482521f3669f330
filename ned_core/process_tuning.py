"""Process-wide settings that make frame work cheaper without changing a single output bit.

``tune_process()`` is called by every pipeline run and analysis; it is idempotent and does nothing
where a setting does not apply (another C library, another BLAS).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

_TUNED = False


def tune_process() -> None:
    """Frame-sized buffers recycled, and numpy's BLAS on one thread (see the two functions below)."""
    global _TUNED
    if _TUNED:
        return
    _TUNED = True
    _recycle_frame_buffers()
    _one_blas_thread()


def _one_blas_thread() -> None:
    """numpy's BLAS (the OpenBLAS in numpy's wheels) on one thread, whatever ``OPENBLAS_NUM_THREADS`` says.

    The stages hand it only small products (a texture-space blend of a few maps, mesh transforms),
    which one thread does as fast; with more, OpenBLAS's helper threads spin after every call, burning
    ~100 ms of CPU a 1080p frame that the threads reading and writing frames need. One thread also
    makes those products independent of the machine's core count (a mixed farm stays bit-identical).
    Other libraries' pools (torch's, OpenCV's) are left alone.
    """
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(internal_api="openblas").limit(limits=1)


def _recycle_frame_buffers() -> None:
    """Let glibc reuse freed frame-sized buffers instead of mapping fresh pages for every array, and
    fault fresh pages in without waiting on huge-page compaction.

    A 1080p RGBA float32 frame (33 MB) is above glibc's largest automatic mmap threshold (32 MB), so
    each one is mapped, zero-filled by the kernel page by page and unmapped again, several times per
    frame. Raising the threshold (and the heap trim threshold with it) keeps them in the heap, where
    the next frame reuses them: about a tenth of a frame's compute at 1080p. Elsewhere than glibc
    it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    # numpy asks the kernel for transparent huge pages on every large array (madvise); where THP
    # "defrag" is madvise (a common default) each fresh 12 MB frame then waits on memory compaction:
    # 42 ms instead of 5 ms on the development machine. Off, unless NUMPY_MADVISE_HUGEPAGE says otherwise.
    if os.environ.get("NUMPY_MADVISE_HUGEPAGE") is None:
        with contextlib.suppress(AttributeError, ImportError):
            from numpy._core.multiarray import _set_madvise_hugepage

            _set_madvise_hugepage(False)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 128 << 20)
    mallopt(m_trim_threshold, 512 << 20)
