"""The on-disk kernel cache in the field: concurrent cold compiles into one
directory, damaged entries, no writable location, a read-only warm cache.

Every check runs real processes sharing a ``NUMBA_CACHE_DIR`` and compares
what a process loaded from the cache with what the process that compiled the
kernel computed itself, bit for bit.  ``GRADKERN_CACHE_ROUNDS`` sets how many
rounds of concurrent compiles run (2 in the suite; the figures in
docs/internals.md come from more).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradkern as gk

#: what a child process does: chain_grad (and optionally a sweep) for some
#: activations, reporting the numbers, its cache hits/misses and the cache
#: warnings it saw; GK_WINDOW widens the race windows as they were reproduced
#: (a sleep after Numba's index read and before its data write, and before
#: gradkern's file publish)
CHILD = textwrap.dedent(r"""
    import json, os, sys, time, warnings
    window = float(os.environ.get("GK_WINDOW", "0"))
    if window:
        from numba.core import caching
        load_index = caching.IndexDataCacheFile._load_index
        def slow_index(self):
            out = load_index(self)
            time.sleep(window)
            return out
        caching.IndexDataCacheFile._load_index = slow_index
        save_data = caching.IndexDataCacheFile._save_data
        def late_data(self, *args):
            time.sleep(window * (os.getpid() % 7) / 7)  # writers finish in another order
            return save_data(self, *args)
        caching.IndexDataCacheFile._save_data = late_data
        try:
            from gradkern._numba import cache as _kernel_cache
            publish = _kernel_cache._write_atomic
            def slow_publish(*args):
                time.sleep(window)
                return publish(*args)
            _kernel_cache._write_atomic = slow_publish
        except ImportError:
            pass
    barrier, parties = os.environ.get("GK_BARRIER"), int(os.environ.get("GK_PARTIES", "1"))
    if barrier:
        # start compiling together: every child waits until all have arrived
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        while len(os.listdir(barrier)) < parties:
            time.sleep(0.01)
    import numpy as np
    import gradkern as gk
    from gradkern.chain import cpu as kernels_cpu
    from gradkern.sweeps import cpu as stats_cpu
    names, do_sweep = sys.argv[1].split(","), sys.argv[2] == "sweep"
    category = getattr(gk, "KernelCacheWarning", Warning)
    x = np.linspace(-3.0, 3.0, 257)
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in names:
            r = gk.chain_grad(x, name, [1.0, -0.5, 2.0])
            out[name] = [r.output.tolist(), r.weight_grads.tolist(), r.input_grad.tolist()]
            if do_sweep:
                s = gk.sweep(name, depths=2, dists="uniform:-3,3", samples=3000, seed=5,
                             backend="cpu")
                out[name + "/sweep"] = s.rows
    kernels = list(kernels_cpu._KERNELS.values()) + list(stats_cpu._KERNELS.values())
    print(json.dumps({
        "results": out,
        "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
        "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
        "warnings": [str(w.message) for w in caught if issubclass(w.category, category)],
    }))
""")

CHAIN_ACTS = ["Tanh", "ReLU", "Sigmoid", "Softsign"]


def _env(cache_dir, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GK_")}
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _start(names, cache_dir, sweep=False, prefix=(), **extra):
    cmd = list(prefix) + [sys.executable, "-c", CHILD, ",".join(names),
                          "sweep" if sweep else "chain"]
    return subprocess.Popen(cmd, env=_env(cache_dir, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _run(names, cache_dir, **kw):
    return _finish(_start(names, cache_dir, **kw))


def _cache_files(cache_dir):
    d = os.path.join(cache_dir, "gradkern")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".gknbc"))


# --------------------------------------------------------------------------- concurrency
def test_concurrent_cold_compiles_never_serve_another_kernel(tmp_path):
    """Three processes compile three different activations (chain and sweep
    kernels) into one empty cache at once, with the race windows widened;
    a fresh process then loads all of them and must get, bit for bit, what
    each compiling process computed -- never another activation's kernel."""
    rounds = int(os.environ.get("GRADKERN_CACHE_ROUNDS", "2"))
    groups = [["Tanh"], ["ReLU"], ["Softsign"]]
    for r in range(rounds):
        cache, barrier = tmp_path / f"cache{r}", tmp_path / f"barrier{r}"
        barrier.mkdir()
        procs = [_start(g, cache, sweep=True, GK_WINDOW=0.3, GK_BARRIER=barrier,
                        GK_PARTIES=len(groups)) for g in groups]
        compiled = {}
        for p in procs:
            compiled.update(_finish(p)["results"])
        loaded = _run(sum(groups, []), cache, sweep=True)
        for name, value in compiled.items():
            assert loaded["results"][name] == value, f"round {r}: {name} served another kernel"
        # and the test is not vacuous: nothing was recompiled, nothing lost
        assert loaded["misses"] == 0, "every kernel should have come from the cache"
        assert loaded["warnings"] == []


# --------------------------------------------------------------------------- damage
@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache holding the chain kernels of CHAIN_ACTS, and their numbers."""
    cache = tmp_path_factory.mktemp("warm")
    first = _run(CHAIN_ACTS, cache)
    assert first["misses"] == len(CHAIN_ACTS) and first["warnings"] == []
    assert len(_cache_files(cache)) == len(CHAIN_ACTS)
    return cache, first["results"]


def _truncate(path, other):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:len(data) // 2])


def _garble(path, other):
    data = bytearray(Path(path).read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)  # 64 zero bytes in the machine code
    Path(path).write_bytes(bytes(data))


def _empty(path, other):
    Path(path).write_bytes(b"")


def _swap(path, other):
    shutil.copyfile(other, path)  # a whole, valid entry -- of another kernel


def test_damaged_entries_are_dropped_and_recompiled(warm_cache, tmp_path):
    warm, expected = warm_cache
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache)
    files = _cache_files(cache)
    damage = [_truncate, _garble, _empty, _swap]
    for i, (path, hurt) in enumerate(zip(files, damage)):
        hurt(path, files[(i + 1) % len(files)])
    damaged = _run(CHAIN_ACTS, cache)
    assert damaged["results"] == expected
    assert damaged["misses"] == len(files)
    assert len(damaged["warnings"]) == len(files), damaged["warnings"]
    assert all("damaged entry" in w for w in damaged["warnings"])
    again = _run(CHAIN_ACTS, cache)  # the recompiled entries were written back
    assert again["misses"] == 0 and again["warnings"] == []
    assert again["results"] == expected


def test_no_writable_location_compiles_in_memory(warm_cache, tmp_path):
    _, expected = warm_cache
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    res = _run(CHAIN_ACTS, not_a_dir / "cache")  # mkdir fails even for root
    assert res["results"] == expected
    assert res["misses"] == len(CHAIN_ACTS)
    assert len(res["warnings"]) == 1 and "compiled in memory" in res["warnings"][0]


def _read_only_prefix(path):
    """``unshare`` wrapper that runs a command with ``path`` mounted read-only
    (a private mount namespace; chmod does not stop root), or None."""
    if shutil.which("unshare") is None:
        return None
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script + " && exit 3", str(path),
                            "sh", "-c", f'touch "{path}/probe"'], capture_output=True)
    if probe.returncode == 0 or os.path.exists(path / "probe"):
        return None  # the mount was not read-only
    return ["unshare", "-m", "sh", "-c", script, str(path)]


def test_read_only_warm_cache_is_read(warm_cache, tmp_path):
    warm, expected = warm_cache
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache)
    prefix = _read_only_prefix(cache)
    if prefix is None:
        pytest.skip("cannot make a read-only mount here (needs unshare -m as root)")
    res = _finish(_start(CHAIN_ACTS, cache, prefix=prefix))
    assert res["misses"] == 0 and res["warnings"] == []
    assert res["results"] == expected
    # a kernel the read-only cache lacks is compiled in memory, with one warning
    res = _finish(_start(CHAIN_ACTS + ["ELU"], cache, prefix=prefix))
    assert res["misses"] == 1 and len(res["warnings"]) == 1
    assert res["results"]["Tanh"] == expected["Tanh"]


# --------------------------------------------------------------------------- keys
def test_identity_covers_every_module_source(tmp_path, monkeypatch):
    """A kernel inlines code from several modules; an edit to any .py file of
    the package, in any sub-folder, changes every kernel's identity (keyed on
    the closed-over functions' own file, a stale tanh was once served)."""
    from gradkern._numba import cache as _kernel_cache

    pkg = tmp_path / "gradkern"
    shutil.copytree(os.path.dirname(gk.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "sub").mkdir()
    (pkg / "sub" / "mod.py").write_text("A = 1\n")

    def stamp():
        monkeypatch.setattr(_kernel_cache, "_stamp", None)
        return _kernel_cache.package_stamp()

    monkeypatch.setattr(_kernel_cache, "_HERE", str(pkg))
    before = stamp()
    assert stamp() == before
    (pkg / "sub" / "mod.py").write_text("A = 2\n")
    after_sub = stamp()
    vecmath = pkg / "_numba" / "vecmath.py"  # a module of a sub-package
    vecmath.write_text(vecmath.read_text() + "\n")
    assert len({before, after_sub, stamp()}) == 3


def test_cache_key_tells_closures_apart():
    """Closures from one factory share their bytecode; the cache identity must
    still differ by what they close over -- one key for the four pair-drawing
    fillers once served a sweep kernel built for uniform inputs to a normal
    sweep.  Every sweep kernel (activation x distribution kind) gets its own key."""
    from gradkern._numba.cache import _function_key
    from gradkern.stream.dists import DIST_KINDS, filler
    from gradkern.sweeps.cpu import _make_stats_kernel

    spec = gk.ACTIVATIONS["Softsign"]
    keys = {_make_stats_kernel(spec.forward, spec.backward, False, code)._cache._key
            for code, _, _ in DIST_KINDS.values()}
    assert len(keys) == len(DIST_KINDS)
    fills = {_function_key(filler(code)) for code, _, _ in DIST_KINDS.values()}
    assert len(fills) == len(DIST_KINDS)  # even without the explicit kind


def test_entry_format_rejects_what_it_did_not_write():
    from gradkern._numba.cache import _pack, _unpack

    blob = _pack("ident-a", {"payload": np.arange(3)})
    assert _unpack(blob, "ident-a")["payload"].tolist() == [0, 1, 2]
    for bad, why in [(blob[:-1], "checksum"), (blob[:20], "truncated"),
                     (b"x" + blob[1:], "not a gradkern"),
                     (blob[:50] + bytes([blob[50] ^ 1]) + blob[51:], "checksum")]:
        with pytest.raises(ValueError, match=why):
            _unpack(bad, "ident-a")
    with pytest.raises(ValueError, match="another kernel"):
        _unpack(blob, "ident-b")
