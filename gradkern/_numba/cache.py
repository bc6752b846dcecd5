"""The on-disk cache of compiled kernels: one file per kernel, checked on load.

Why not Numba's own cache: it keeps one index file per Python function and
updates it by an unlocked read-modify-write.  Every chain kernel is the same
Python function (a factory's closure), so all 17 activations shared one index;
two processes compiling different activations into one cache directory (Dask
workers, parallel CI jobs, a shared ``NUMBA_CACHE_DIR``) could leave one
activation's entry pointing at another's machine code, and every later process
then returned ReLU's numbers for ``"tanh"`` without an error (5 of 9 rounds of
2-6 concurrent cold compiles, with the race window widened by a sleep).

Here there is no index.  A kernel's identity (what it computes, the compiled
signature, the CPU, the Numba version, the source of every gradkern module)
is hashed into its file name, and the identity itself is stored in the file
behind a SHA-256 of the contents:

    GKCACHE1 | sha256(rest) | len(ident) | ident | numba-pickled compile result

A load accepts a file only if the digest and the stored identity both match,
so a torn write, a truncated or garbled file, or a hash collision is a miss:
the entry is dropped (one :class:`~gradkern.errors.KernelCacheWarning`) and
the kernel compiled again.  Writers write a private temporary file and
``os.replace`` it, so concurrent writers of one kernel publish whole files
(the same bytes, as the same key compiles to the same code).

Where: ``NUMBA_CACHE_DIR/gradkern`` when that is set, else the package's
``__pycache__/kernels``, else Numba's user-wide cache directory.  Loads look in
every candidate (a read-only, pre-warmed install is used); saves go to the
first writable one.  With none writable, kernels are compiled in memory (one
warning per process): slower to start, the same numbers.
"""
import hashlib
import os
import pickle
import struct
import sys
import threading
import uuid
import warnings

import llvmlite
import numba
from numba.core.caching import _Cache
from numba.core.compiler import CompileResult
from numba.core.serialize import dumps

from ..errors import KernelCacheWarning

__all__ = ["cache_kernel", "KernelCache", "package_stamp", "cache_dirs", "load_only",
           "NotCached"]

_MAGIC = b"GKCACHE1"
_SUFFIX = ".gknbc"
#: the gradkern package: every module below it counts in a kernel's identity
_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_lock = threading.Lock()
_warned = set()  # what was warned about once per process
_stamp = None
_local = threading.local()  # load_only's flag, per thread


class NotCached(Exception):
    """A kernel called under :func:`load_only` is in neither memory nor disk cache."""


class load_only:
    """Context: a gradkern kernel that would be compiled raises
    :class:`NotCached` instead (in this thread; loads from disk go on).  How
    a job asks which of the kernels it will call are missing, by calling
    each on a tiny input, without knowing their signatures."""

    def __enter__(self):
        self._old = getattr(_local, "load_only", False)
        _local.load_only = True
        return self

    def __exit__(self, *exc):
        _local.load_only = self._old
        return False


def package_stamp():
    """SHA-256 of the source of every gradkern module, sub-packages included.

    A kernel inlines code from several modules (the activation math, the
    vector math, the Numba helpers), so an edit to any of them must change
    every kernel's identity: keyed on the kernel's own file only, an edited
    ``_vecmath`` once served the old tanh.  Contents, not modification times,
    so a fresh clone or a ``git checkout`` of the same code keeps its cache.
    Computed once per process (~1 ms for the ~300 KB of source).
    """
    global _stamp
    if _stamp is None:
        h = hashlib.sha256()
        for root, dirs, files in os.walk(_HERE):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    h.update(os.path.relpath(path, _HERE).encode() + b"\0")
                    with open(path, "rb") as f:
                        h.update(f.read())
        _stamp = h.hexdigest()
    return _stamp


def cache_dirs():
    """Candidate cache directories, in the order they are tried."""
    if numba.config.CACHE_DIR:
        return [os.path.join(numba.config.CACHE_DIR, "gradkern")]
    from numba.misc.appdirs import AppDirs

    # one user-wide folder per installed copy: two virtual environments with
    # different gradkern versions must not prune each other's kernels
    where = hashlib.sha1(_HERE.encode()).hexdigest()[:16]
    user = AppDirs(appname="numba", appauthor=False).user_cache_dir
    return [os.path.join(_HERE, "__pycache__", "kernels"),
            os.path.join(user, f"gradkern-{where}")]


def _function_key(fn, depth=0):
    py = getattr(fn, "py_func", fn)
    code = py.__code__
    # the source itself is covered by the package stamp
    digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()
    # a factory's closures share their code: what tells them apart is what they
    # close over (a key without it once served a uniform-input sweep kernel
    # for a normal one), so closed-over functions and constants count too
    cells = []
    for cell in py.__closure__ or ():
        value = cell.cell_contents
        if hasattr(getattr(value, "py_func", value), "__code__") and depth < 4:
            cells.append(_function_key(value, depth + 1))
        elif isinstance(value, (bool, int, float, str)):
            cells.append(repr(value))
    closure = hashlib.sha256("|".join(cells).encode()).hexdigest() if cells else "-"
    return f"{py.__module__}.{py.__qualname__}:{digest}:{closure}"


def cache_kernel(dispatcher, *parts):
    """Give ``dispatcher`` (a factory-made ``numba.njit`` closure) a disk cache
    keyed by ``parts`` -- the jitted scalar functions it closes over, and strings
    for any other closure constant that changes the code -- and by the source
    of every gradkern module (see this module).

    Numba would key a closure's entry by a pickle of its cell contents, and a
    pickled dispatcher carries a per-process id, so every new process would
    miss and recompile (measured: 0.5 s per activation and dtype).
    """
    key = "|".join(p if isinstance(p, str) else _function_key(p) for p in parts)
    dispatcher._cache = KernelCache(dispatcher.py_func, key, dispatcher.py_func.__name__)
    return dispatcher


def _warn(message):
    # stacklevel 2 would name this module; the user's call site is deep in
    # Numba's dispatcher, so no level is more useful than the message itself
    warnings.warn(message, KernelCacheWarning, stacklevel=2)


def _pack(ident, payload):
    ident_bytes = ident.encode()
    body = struct.pack("<Q", len(ident_bytes)) + ident_bytes + dumps(payload)
    return _MAGIC + hashlib.sha256(body).digest() + body


def _unpack(blob, ident):
    """The compile result stored in ``blob``; ValueError if it is not
    exactly the entry for ``ident``."""
    head = len(_MAGIC) + 32
    if len(blob) < head + 8 or not blob.startswith(_MAGIC):
        raise ValueError("not a gradkern cache file, or truncated")
    body = blob[head:]
    if hashlib.sha256(body).digest() != blob[len(_MAGIC):head]:
        raise ValueError("checksum mismatch (truncated or garbled)")
    (n,) = struct.unpack_from("<Q", body)
    if body[8:8 + n].decode(errors="replace") != ident:
        raise ValueError("entry of another kernel")
    return pickle.loads(body[8 + n:])


def _write_atomic(directory, name, blob):
    """Publish ``blob`` as ``directory/name``: a private temporary file, then
    ``os.replace``; the temporary file is removed on any failure."""
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _prune(directory, prefix, keep):
    """Remove this kernel's entries built from other gradkern sources (they
    can never be loaded again by this install); best effort."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(_SUFFIX) and not name.startswith(keep):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


class KernelCache(_Cache):
    """Numba dispatcher cache for one gradkern kernel (see the module doc).

    ``key`` says what the kernel computes (the scalar functions and closure
    constants it was built from); ``name`` prefixes its files.
    """

    def __init__(self, py_func, key, name):
        self._py_func = py_func
        code = py_func.__code__
        self._key = "|".join((
            key, hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest(),
            package_stamp(), f"numba {numba.__version__}", f"llvmlite {llvmlite.__version__}",
            f"python {sys.version_info[0]}.{sys.version_info[1]}"))
        self._name = name
        self._enabled = True

    def __repr__(self):
        return f"<KernelCache {self._name}>"

    @property
    def cache_path(self):
        return cache_dirs()[0]

    def enable(self):
        self._enabled = True

    def disable(self):
        self._enabled = False

    def flush(self):
        for directory in cache_dirs():
            _prune(directory, self._name + "-", "\0")

    def _ident(self, sig, codegen):
        return f"{self._key}|{sig!r}|{codegen.magic_tuple()!r}"

    def _file_name(self, ident):
        # the source stamp leads, so entries of edited code can be pruned
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return f"{self._name}-{package_stamp()[:12]}-{digest}{_SUFFIX}"

    def load_overload(self, sig, target_context):
        target_context.refresh()
        if not self._enabled:
            return None
        ident = self._ident(sig, target_context.codegen())
        name = self._file_name(ident)
        for directory in cache_dirs():
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    blob = f.read()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                _warn_once(directory, f"gradkern kernel cache: cannot read {directory} ({exc}); "
                                      "compiling instead")
                continue
            try:
                payload = _unpack(blob, ident)
                return CompileResult._rebuild(target_context, *payload)
            except Exception as exc:  # anything a damaged file can raise
                self._drop(path, exc)
        if getattr(_local, "load_only", False):
            raise NotCached(self._name)
        return None

    def _drop(self, path, exc):
        try:
            os.unlink(path)
            what = "removed; recompiling"
        except OSError:
            what = "left in place (not writable); recompiling"
        _warn(f"gradkern kernel cache: damaged entry {path} ({type(exc).__name__}: {exc}); "
              f"{what}")

    def save_overload(self, sig, cres):
        if not self._enabled:
            return
        if any(not lifted.can_cache for lifted in cres.lifted) or \
                cres.library.has_dynamic_globals:
            _warn(f"gradkern kernel cache: {self._name} cannot be cached (it uses lifted "
                  "code or dynamic globals); it is compiled in every process")
            return
        ident = self._ident(sig, cres.codegen)
        name = self._file_name(ident)
        blob = _pack(ident, cres._reduce())
        for directory in cache_dirs():
            try:
                _write_atomic(directory, name, blob)
            except OSError:
                continue
            _prune(directory, self._name + "-", name[:len(self._name) + 14])
            return
        _warn_in_memory()


def _warn_once(what, message):
    with _lock:
        if what in _warned:
            return
        _warned.add(what)
    _warn(message)


def _warn_in_memory():
    _warn_once("in memory", "gradkern kernel cache: no writable cache directory (tried "
               + ", ".join(cache_dirs()) + "); kernels are compiled in memory in every "
               "process.  Set NUMBA_CACHE_DIR to a writable directory to keep them.")
