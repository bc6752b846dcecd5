"""The sweep runner end to end: bit-identical across thread counts and chunk
sizes, resume after kill -9 and Ctrl-C, the directory's manifest rules, the
CLI (--json, quiet progress), plots, and ``import gradkern`` staying light."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gradkern as gk
from gradkern.progress import Progress, format_line
from gradkern.sweeps.store import ManifestMismatch

BIN = Path(sys.executable).parent
GRID = dict(activations="ReLU,Tanh,RReLU", depths="1-3", dists=["normal:0,1", "uniform:-3,3"],
            weights=[1.0, 0.5], seed=7)
N = 3 * 4096 + 11


def _cli(*args, env=None, **kw):
    exe = BIN / "gradkern"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gradkern"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def _same(a, b):
    """Two SweepResults equal bit for bit: every row and every histogram."""
    assert a.rows == b.rows
    assert [{k: v for k, v in p.items() if k != "seconds"} for p in a.points] == \
        [{k: v for k, v in p.items() if k != "seconds"} for p in b.points]
    assert a.histograms.keys() == b.histograms.keys()
    for k in a.histograms:
        assert np.array_equal(a.histograms[k], b.histograms[k]), k


@pytest.fixture(scope="module")
def baseline():
    return gk.sweep(samples=N, backend="cpu", **GRID)


def test_grid_and_table_shape(baseline):
    assert len(baseline.points) == 3 * 3 * 2 * 2
    assert len(baseline) == 3 * 2 * 2 * (1 + 2 + 3)
    row = baseline.rows[0]
    for key in ("activation", "depth", "dist", "layer", "samples", "mean_abs_grad", "mean_grad",
                "rms_grad", "min_grad", "max_grad", "zero_fraction", "mean_log10_abs_grad"):
        assert key in row
    assert {r["layer"] for r in baseline.rows if r["depth"] == 3} == {1, 2, 3}
    df = baseline.to_pandas()
    assert list(df.columns) == list(baseline.columns) and len(df) == len(baseline)


@pytest.mark.parametrize("chunk_blocks", [1, 2, 1000])
def test_bit_identical_for_any_chunk_size(baseline, chunk_blocks):
    _same(baseline, gk.sweep(samples=N, backend="cpu", chunk_blocks=chunk_blocks, **GRID))


def test_bit_identical_with_one_numba_thread(baseline, tmp_path):
    r = _cli("sweep", "--activations", GRID["activations"], "--depths", "1-3",
             "--dist", "normal:0,1", "--dist", "uniform:-3,3", "--weights", "1,0.5",
             "--seed", 7, "--samples", N, "--backend", "cpu", "--out", tmp_path / "t1",
             "--json", "--no-plots", env={"NUMBA_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"] == json.loads(json.dumps(baseline.rows))
    _same(baseline, gk.load_sweep(tmp_path / "t1"))


def test_seed_changes_everything(baseline):
    other = gk.sweep(samples=N, backend="cpu", **{**GRID, "seed": 8})
    assert other.rows[0]["mean_abs_grad"] != baseline.rows[0]["mean_abs_grad"]


def test_directory_rules(tmp_path):
    d = tmp_path / "s"
    kw = dict(activations="ReLU", depths=2, samples=5000, backend="cpu")
    first = gk.sweep(out=d, **kw)
    with pytest.raises(ValueError, match="already holds a sweep"):
        gk.sweep(out=d, **kw)
    with pytest.raises(ManifestMismatch, match="seed"):
        gk.sweep(out=d, resume=True, seed=1, **kw)
    with pytest.raises(ManifestMismatch, match="samples"):
        gk.sweep(out=d, resume=True, **{**kw, "samples": 5001})
    calls = []
    again = gk.sweep(out=d, resume=True, on_point=calls.append, **kw)
    assert calls == []  # everything was done: nothing recomputed
    _same(first, again)
    for name in ("manifest.json", "results.csv", "results.json", "points.csv",
                 "points/00000.json"):
        assert (d / name).exists(), name
    assert json.loads((d / "results.json").read_text())["results"] == first.rows


def _wait_points(d, n, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if (d / "points").is_dir() and len(list((d / "points").glob("*.json"))) >= n:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


SWEEP_ARGS = ["sweep", "--activations", "ReLU,Tanh,Sigmoid,ELU", "--depths", "1-5",
              "--samples", "400000", "--seed", "3", "--backend", "cpu", "--quiet", "--no-plots"]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_resume_after_interrupt(tmp_path, how):
    d = tmp_path / "run"
    exe = BIN / "gradkern"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gradkern"]
    # SIGINT back to its default in the child: a shell that starts pytest in the
    # background hands it down ignored, and Python then installs no handler
    proc = subprocess.Popen(cmd + SWEEP_ARGS + ["--out", str(d)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started = _wait_points(d, 2, proc)
    proc.send_signal(getattr(signal, how))
    out, err = proc.communicate(timeout=60)
    if not started or proc.returncode == 0:
        pytest.skip("the sweep finished before it could be interrupted")
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130 and "--resume" in err, err
    done = sorted((d / "points").glob("*.json"))
    assert 2 <= len(done) < 20
    mtimes = {p.name: p.stat().st_mtime_ns for p in done}
    r = _cli(*SWEEP_ARGS, "--out", d, "--resume")
    assert r.returncode == 0, r.stderr
    assert len(list((d / "points").glob("*.json"))) == 20
    assert {p.name: p.stat().st_mtime_ns for p in done} == mtimes  # not recomputed
    whole = gk.sweep("ReLU,Tanh,Sigmoid,ELU", "1-5", "normal:0,1", 1.0, 400000, seed=3,
                     backend="cpu")
    _same(whole, gk.load_sweep(d))
    rows = json.loads((d / "results.json").read_text())["results"]
    assert rows == json.loads(json.dumps(whole.rows))
    assert (d / "results.csv").read_text().count("\n") == len(whole.rows) + 1


def test_cli_json_and_quiet_progress(tmp_path):
    r = _cli("sweep", "--activations", "Softsign", "--depths", "2", "--samples", "1e4",
             "--dist", "laplace:0,1", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # not a terminal: no progress bar
    doc = json.loads(r.stdout)
    assert [x["layer"] for x in doc["results"]] == [1, 2]
    assert doc["results"][0]["dist"] == "laplace:0,1" and doc["results"][0]["samples"] == 10000
    r = _cli("sweep", "--dist", "normal:0,-1")
    assert r.returncode == 2 and "sigma must be > 0" in r.stderr


def test_progress_bar_draws_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(1000, 2, stream=stream, interval=0)
        bar.advance(samples=500)
        bar.advance(samples=500, points=1)
        bar.close()
    assert pipe.getvalue() == ""
    assert "\r[" in tty.getvalue() and "1/2 points" in tty.getvalue()
    line = format_line(450, 1000, 3, 17, 12.3e6)
    assert "45%" in line and "3/17 points" in line and "12.3M/s" in line and "ETA 00:00" in line


def test_plots(tmp_path):
    d = tmp_path / "p"
    gk.sweep("ReLU,Sigmoid,Hardshrink", "1-4", "normal:0,0.3", 1.0, 5000, backend="cpu", out=d)
    r = _cli("plot", d)
    assert r.returncode == 0, r.stderr
    for name in ("layers.png", "heatmap.png"):
        data = (d / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_import_gradkern_stays_light():
    code = ("import sys, gradkern; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'matplotlib', 'jax', 'dask', 'distributed', 'pandas') "
            "or m.startswith('numba.cuda')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
