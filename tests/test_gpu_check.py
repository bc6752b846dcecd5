"""`make gpu-check` as far as a CPU can take it: the dry run on numba-cuda's
simulator, the refusal without a GPU, the verdicts and the table.

The real run needs a GPU; these tests check that every stage runs, records
what it did, and that no figure is written as a GPU figure when none ran."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradkern.bench import gpu_check

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("numba.cuda", reason="numba-cuda (the `cuda` extra) not installed")


def _run(args, env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "gradkern.bench.gpu_check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    proc = _run(["--dry-run", "--out", str(out), "--no-build", "--activations", "ReLU,RReLU",
                 "--dtypes", "float32,float64",
                 "--tests", "tests/test_cuda.py::test_empty_and_dtype_rules"])
    return proc, out


def test_dry_run_runs_every_stage_and_marks_its_figures(dry_run):
    proc, out = dry_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((out / "gpu-check.json").read_text())
    assert record["dry_run"] is True
    st = record["stages"]
    assert list(st) == ["environment", "build", "tests", "chain", "native", "sweep"]
    assert st["environment"]["result"]["simulator"] is True
    assert st["build"]["status"] == "skipped"
    assert st["tests"]["status"] == "ok"
    assert st["tests"]["result"]["passed"] == 1 and st["tests"]["result"]["failed"] == 0
    assert (out / "tests.log").exists()
    rows = st["chain"]["result"]["rows"]
    assert {(r["activation"], r["dtype"]) for r in rows} == {
        (a, d) for a in ("ReLU", "RReLU") for d in ("float32", "float64")}
    for r in rows:
        assert r["samples_per_s"] > 0 and r["share_of_copy_bandwidth"] > 0
        assert "speedup_vs_torch" not in r  # no GPU torch on the simulator: not measured
    assert st["native"]["status"] == "skipped" and "needs a GPU" in st["native"]["why"]
    sweep_rows = st["sweep"]["result"]["rows"]
    assert [r["activation"] for r in sweep_rows] == ["ReLU", "Tanh"]
    assert all(r["samples"] >= 4096 and r["samples_per_s"] > 0 for r in sweep_rows)
    # verdicts exist for every target; the native one is "not measured"
    assert set(record["verdicts"]) == set(gpu_check.TARGETS)
    assert record["verdicts"]["numba_over_native"]["met"] is None


def test_dry_run_prints_the_table_last_and_says_it_is_no_gpu_figure(dry_run):
    proc, out = dry_run
    summary = (out / "summary.md").read_text()
    assert summary.startswith("**DRY RUN on numba-cuda's simulator")
    assert proc.stdout.rstrip().endswith(summary.rstrip().splitlines()[-1])
    assert "| target | wanted | worst measured | met |" in proc.stdout
    assert "| ReLU | float32 |" in summary


def test_without_a_gpu_nothing_is_measured_or_written(tmp_path):
    out = tmp_path / "real"
    proc = _run(["--out", str(out)], env_extra={"NUMBA_ENABLE_CUDASIM": "1"})
    assert proc.returncode == 2
    assert "no CUDA GPU here" in proc.stderr and "--dry-run" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, match", [
    (["--dry-run", "--dtypes", "float16"], "--dtypes: unknown dtype 'float16'"),
    (["--dry-run", "--activations", "Swish"], "--activations: unknown"),
    (["--dry-run", "--n", "0"], "expected a positive whole number"),
])
def test_bad_arguments_are_named(args, match):
    proc = _run(args)
    assert proc.returncode == 2 and match in proc.stderr


def _record(chain_rows, native_rows=(), sweep_rows=()):
    return {"dry_run": False, "started": "now", "stages": {
        "environment": {"status": "ok", "seconds": 0.1,
                        "result": {"device": "NVIDIA H200", "compute_capability": [9, 0]}},
        "chain": {"status": "ok", "seconds": 1.0,
                  "result": {"copy_bandwidth_GBps": 4300.0, "rows": list(chain_rows)}},
        "native": {"status": "ok", "seconds": 1.0, "result": {"rows": list(native_rows)}},
        "sweep": {"status": "ok", "seconds": 1.0, "result": {"rows": list(sweep_rows)}}}}


def test_verdicts_read_the_worst_row_against_each_target():
    chain = [{"activation": "ReLU", "dtype": "float32", "n": 10, "seconds": 1.0,
              "samples_per_s": 1e11, "GBps": 3900.0, "share_of_copy_bandwidth": 0.91,
              "speedup_vs_torch": 25.0},
             {"activation": "Mish", "dtype": "float32", "n": 10, "seconds": 1.0,
              "samples_per_s": 5e10, "GBps": 2000.0, "share_of_copy_bandwidth": 0.47,
              "speedup_vs_torch": 12.0}]
    native = [{"activation": "ReLU", "dtype": "float32", "numba_over_native": 1.02},
              {"activation": "Mish", "dtype": "float32", "numba_over_native": 1.31}]
    sweep = [{"activation": "ReLU", "samples": 1e11, "seconds": 0.8, "samples_per_s": 1.25e11},
             {"activation": "Tanh", "samples": 1e11, "seconds": 1.2, "samples_per_s": 0.83e11}]
    rec = _record(chain, native, sweep)
    v = gpu_check.verdicts(rec)
    assert v["share_of_copy_bandwidth"] == {"target": 0.8, "worst": 0.47, "met": False}
    assert v["speedup_vs_torch"]["worst"] == 12.0 and v["speedup_vs_torch"]["met"] is True
    assert v["numba_over_native"]["worst"] == 1.31 and v["numba_over_native"]["met"] is False
    assert v["sweep_samples_per_s"]["worst"] == 0.83e11 and v["sweep_samples_per_s"]["met"] is False
    rec["verdicts"] = v
    table = gpu_check.summary_table(rec)
    assert not table.startswith("**DRY RUN")
    assert "| Mish | float32 | 5e+10 | 2000.00 | 47% | 12.00 | 1.31 |" in table
    assert "| share_of_copy_bandwidth | >= 0.80 | 0.47 | NO |" in table


def test_a_failed_stage_is_recorded_and_the_next_one_runs():
    record = {"stages": {}}

    def boom():
        raise OSError("disk full")

    assert gpu_check._stage(record, "one", boom) is None
    assert gpu_check._stage(record, "two", lambda: 7) == 7
    assert record["stages"]["one"]["status"] == "failed"
    assert "OSError: disk full" in record["stages"]["one"]["error"]
    assert record["stages"]["two"] == {"status": "ok", "result": 7,
                                       "seconds": record["stages"]["two"]["seconds"]}


def test_makefile_has_the_gpu_check_target():
    text = (REPO / "Makefile").read_text()
    assert "gpu-check:" in text and "gradkern.bench.gpu_check" in text
    proc = subprocess.run(["make", "-n", "gpu-check", "GPU_PYTHON=python3"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "python3 -m gradkern.bench.gpu_check" in proc.stdout
