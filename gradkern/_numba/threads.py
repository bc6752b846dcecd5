"""The threads behind gradkern's parallel kernels: which layer, and after fork.

Numba runs a ``parallel=True`` kernel on one of three threading layers,
chosen once per process at the first parallel call, TBB first if it loads.
Measured on a 2-core machine (ReLU, depth 3, float32; ``benchmarks/busy.py``):

- **GNU OpenMP** (``omp``, what Numba picks when TBB does not load) splits the
  work statically, one part per thread, and waits for every part.  With two
  other CPU-bound processes running, a worker thread that is not scheduled
  holds the call for a time slice: 8 ms per call at N = 1e5 and at 1e6
  against 0.12 ms and 1.3 ms on one thread (60x and 6x).  And libgomp cannot
  survive ``fork``: a child that starts a parallel region aborts ("fork()
  called from a process already using GNU OpenMP"), so a fork ``Pool``
  hangs.
- **TBB** splits the work into tasks that idle threads steal; the calling
  thread runs tasks itself, so when the other threads are not scheduled it
  simply does all of them: 0.13 ms at 1e5 and 1.4 ms at 1e6 under the same
  load, what one thread costs; within 8% of OpenMP on a quiet machine.  Numba's
  TBB layer re-creates its scheduler after ``fork``.
- **workqueue** is fork-safe but splits statically like OpenMP and must not
  be entered by two Python threads at once.

So gradkern depends on the ``tbb`` wheel and makes it loadable: pip installs
``libtbb.so.12`` in ``<prefix>/lib``, which is not on the loader's path, and
Numba's TBB extension finds it by name only; loading it by its full path
first lets Numba's default choice (TBB, then OpenMP, then workqueue) take it.
A layer the user chose (``NUMBA_THREADING_LAYER``) is respected, with two
guards: a process forked from one that ran GNU OpenMP runs the serial kernels
(the same numbers, one core), and workqueue calls are serialised.
"""
import contextlib
import ctypes
import os
import sys
import threading

import numba

__all__ = ["prepare", "parallel_allowed", "launch", "layer", "num_threads", "set_num_threads"]

_prepared = False
_forked_from_gnu_omp = False
_workqueue_lock = threading.Lock()


def _tbb_candidates():
    seen = []
    for prefix in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(sys.executable))):
        path = os.path.join(prefix, "lib", "libtbb.so.12")
        if path not in seen:
            seen.append(path)
    return seen


def _preload_tbb():
    """Load pip's ``libtbb.so.12`` globally so that Numba's TBB layer finds it."""
    if not sys.platform.startswith("linux"):
        return False
    for path in _tbb_candidates():
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                continue
    return False


def _initialized():
    from numba.np.ufunc import parallel

    return parallel._is_initialized


def layer():
    """The threading layer in use ("tbb", "omp", "workqueue"), or None before
    the first parallel call of this process."""
    if not _initialized():
        return None
    return numba.threading_layer()


def prepare():
    """Call before the first parallel kernel: make TBB loadable for Numba's
    default choice.  Cheap after the first call."""
    global _prepared
    if _prepared:
        return
    _prepared = True
    if not _initialized() and str(numba.config.THREADING_LAYER).lower() in (
            "default", "tbb", "safe", "threadsafe", "forksafe"):
        _preload_tbb()


def num_threads():
    """``numba.get_num_threads()``, which starts the threading layer: TBB must
    be loadable before that (a first, serial call of 10 samples chose GNU
    OpenMP for the whole process when it asked first)."""
    prepare()
    return numba.get_num_threads()


def set_num_threads(n):
    """``numba.set_num_threads(n)`` (which also starts the layer), after :func:`prepare`."""
    prepare()
    numba.set_num_threads(n)


def _gnu_omp_loaded():
    if layer() != "omp":
        return False
    from numba.np.ufunc import omppool

    return getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def _after_fork_in_child():
    global _forked_from_gnu_omp
    # _is_initialized is inherited from the parent; GNU OpenMP's threads are not
    if _forked_from_gnu_omp or _gnu_omp_loaded():
        _forked_from_gnu_omp = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_allowed():
    """False in a process forked from one that ran GNU OpenMP: its first
    parallel region would abort the process."""
    prepare()
    return not _forked_from_gnu_omp


def launch():
    """Context for one parallel kernel call: serialises calls from several
    Python threads on the workqueue layer, which aborts on concurrent use."""
    name = layer()
    if name is None or name == "workqueue":
        return _workqueue_lock
    return contextlib.nullcontext()
