"""Compile the kernels a job will need in worker processes, into the disk cache.

A job that needs several kernels it has never compiled (a sweep over every
activation from an empty cache: one kernel each) would compile them one
after another on one core.  :func:`start` hands the missing ones to a few
worker processes, each a fresh ``python -m gradkern._numba.prewarm`` (not a
``multiprocessing`` child: spawn would re-run the caller's main script, and
fork is unsafe once threads run); each compiles its share and saves it to
the disk cache (:mod:`.cache`).  The job itself runs as before, waiting
(:meth:`Prewarm.wait`) for a kernel's task before its first call, which then
loads it from disk.

Nothing a worker does can change a number: the cache checks every entry's
identity on load, and a worker that fails, is killed or writes nothing only
means the job compiles that kernel itself, as without workers.  The job's
process never waits for a worker that died.  ``GRADKERN_COMPILE_WORKERS``
sets the most workers (0 turns them off); the default is the CPUs this
process may use.
"""
import os
import pickle
import subprocess
import sys
import threading

__all__ = ["start", "Prewarm", "max_workers", "is_cached", "missing"]

#: the folder that holds this gradkern package
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: fewer missing kernels than this are compiled by the job itself: a worker
#: costs ~1 s to start (Python, NumPy, Numba, gradkern) before it compiles
MIN_TASKS = 2


def max_workers():
    """Most worker processes: ``GRADKERN_COMPILE_WORKERS`` or the usable CPUs."""
    env = os.environ.get("GRADKERN_COMPILE_WORKERS", "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            return 0
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def is_cached(dispatcher, args):
    """True when ``dispatcher`` (a :func:`.cache.cache_kernel` kernel) has
    code for ``args``' types in memory or in a cache file (not checked
    here: a damaged file is found, dropped and recompiled at the call)."""
    from numba.core.registry import cpu_target

    types = tuple(dispatcher.typeof_pyval(a) for a in args)
    if types in dispatcher.overloads:
        return True
    cache = dispatcher._cache
    if not hasattr(cache, "_file_name"):
        return False
    from .cache import cache_dirs

    name = cache._file_name(cache._ident(types, cpu_target.target_context.codegen()))
    return any(os.path.exists(os.path.join(d, name)) for d in cache_dirs())


def missing(probe, specs):
    """The indices of ``specs`` whose kernels are not compiled yet: ``probe(spec)``
    calls the kernels of one spec on a tiny input, which here loads them
    from the disk cache (they are then in memory for the job) or raises
    :class:`~.cache.NotCached` instead of compiling."""
    from .cache import NotCached, load_only

    out = []
    for i, spec in enumerate(specs):
        try:
            with load_only():
                probe(spec)
        except NotCached:
            out.append(i)
    return out


def _cache_writable():
    from .cache import cache_dirs

    for d in cache_dirs():
        try:
            os.makedirs(d, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return True
    return False


class Prewarm:
    """Worker processes compiling tasks ``0 .. n-1``; :meth:`wait` for one."""

    def __init__(self, target, specs, n_workers):
        self._done = set()
        self._cond = threading.Condition()
        self._procs = []
        self._alive = 0
        shares = [list(range(w, len(specs), n_workers)) for w in range(n_workers)]
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "GRADKERN_COMPILE_WORKERS": "0"}
        try:
            for share in shares:
                payload = pickle.dumps((target, [(i, specs[i]) for i in share]))
                # run from the folder above this gradkern: ``-m`` puts the
                # working directory first on the path, and another checkout
                # there would compile its own kernels (harmless, and useless)
                proc = subprocess.Popen([sys.executable, "-m", "gradkern._numba.prewarm"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=env, cwd=_ROOT)
                self._procs.append(proc)
                with self._cond:
                    self._alive += 1
                threading.Thread(target=self._feed, args=(proc, payload), daemon=True).start()
        except BaseException:
            self.close()
            raise

    def _feed(self, proc, payload):
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
            for line in proc.stdout:
                word = line.split()
                if len(word) == 2 and word[0] in (b"ok", b"fail"):
                    with self._cond:
                        self._done.add(int(word[1]))
                        self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            proc.stdout.close()
            proc.wait()
            with self._cond:
                self._alive -= 1
                self._cond.notify_all()

    def wait(self, index, timeout=None):
        """Until task ``index`` is finished (or failed), or no worker is left."""
        with self._cond:
            self._cond.wait_for(lambda: index in self._done or self._alive == 0, timeout)

    def close(self):
        """Stop the workers that still run (the job is over, or interrupted)."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def start(target, specs):
    """A :class:`Prewarm` compiling ``target(spec)`` for each spec in workers,
    or None where it would not help (fewer than :data:`MIN_TASKS` specs, one
    CPU, ``GRADKERN_COMPILE_WORKERS=0``, no writable cache directory, or no
    process could be started).

    ``target`` is a module-level function (pickled by name) that compiles
    one kernel into the disk cache; ``specs`` are picklable.
    """
    n = min(max_workers(), len(specs))
    if len(specs) < MIN_TASKS or n < 2 or not _cache_writable():
        return None
    try:
        return Prewarm(target, specs, n)
    except OSError:
        return None


def _worker():
    target, tasks = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    for i, spec in tasks:
        try:
            target(spec)
            out.write(b"ok %d\n" % i)
        except Exception:  # the job compiles it itself
            out.write(b"fail %d\n" % i)
        out.flush()


if __name__ == "__main__":
    _worker()
