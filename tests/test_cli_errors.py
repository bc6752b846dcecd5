"""The command line on user errors, bugs, Ctrl-C and a closed pipe: one line
``gradkern COMMAND: error: ...`` on stderr and an exit code, never a traceback
unless --debug (or GRADKERN_DEBUG=1) asks for it.  Real processes throughout:
what is checked is what a user's terminal shows."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gradkern as gk
from gradkern import experiments
from gradkern.cli import EXIT_CODES, main

from .conftest import REAL_GPU

BIN = Path(sys.executable).parent
TINY_SWEEP = ["sweep", "--activations", "ReLU", "--depths", "1", "--samples", "1e3",
              "--backend", "cpu", "--quiet", "--no-plots"]


def _cmd():
    exe = BIN / "gradkern"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gradkern"]


def _cli(*args, env=None, prefix=()):
    return subprocess.run([*prefix, *_cmd(), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def _one_error_line(stderr, command):
    """stderr holds exactly one line, the error line of ``command``; its message."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    head = f"gradkern {command}: error: "
    assert lines[0].startswith(head), stderr
    return lines[0][len(head):]


def _assert_user_error(args, env=None, prefix=(), expect=""):
    """Exit 2 with one line naming ``expect``; with --debug the traceback too."""
    p = _cli(*args, env=env, prefix=prefix)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert expect in _one_error_line(p.stderr, args[0])
    d = _cli("--debug", *args, env=env, prefix=prefix)
    assert d.returncode == 2 and "Traceback (most recent call last)" in d.stderr, d.stderr
    assert d.stderr.rstrip().splitlines()[-1] == p.stderr.rstrip()
    return p


# -- user errors -----------------------------------------------------------------------------

@pytest.mark.skipif(REAL_GPU, reason="a real GPU is present: backend cuda would run")
@pytest.mark.parametrize("args", [
    ["sweep", "--backend", "cuda", "--activations", "ReLU", "--depths", "1", "--samples", "1e3",
     "--quiet", "--no-plots"],
    ["verify", "--backend", "cuda", "--activations", "ReLU", "--depths", "1", "--quiet"],
], ids=["sweep", "verify"])
def test_cuda_without_a_gpu(args):
    # not the simulator (conftest turns it on where there is no GPU): no GPU at all
    _assert_user_error(args, env={"NUMBA_ENABLE_CUDASIM": "0"}, expect="no usable CUDA GPU")


@pytest.mark.skipif(REAL_GPU, reason="a real GPU is present: backend cuda would run")
def test_sweep_api_cuda_without_a_gpu_is_backend_unavailable():
    # gradkern's error before any work, as chain_grad's, not numba's from the first launch
    code = ("import gradkern as gk\n"
            "try:\n    gk.sweep('ReLU', 1, samples=10, backend='cuda')\n"
            "except gk.BackendUnavailableError as exc:\n    print('refused:', exc)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    assert p.stdout.startswith("refused: backend='cuda': no usable CUDA GPU"), p.stdout + p.stderr


def test_out_is_a_file(tmp_path):
    (tmp_path / "f").write_text("mine")
    for out in (tmp_path / "f", tmp_path / "f" / "sub"):
        _assert_user_error(TINY_SWEEP + ["--out", out], expect=str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "mine"


def test_unreachable_dask_scheduler():
    pytest.importorskip("distributed")
    # nothing listens on port 9 (discard); a short connect timeout keeps the test fast
    _assert_user_error(TINY_SWEEP + ["--dask", "tcp://127.0.0.1:9"],
                       env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"},
                       expect="tcp://127.0.0.1:9")


def _tiny_filesystem(tmp_path):
    """A command prefix that runs the CLI with an 8 KiB tmpfs mounted on tmp_path/full, in a
    mount namespace of its own (needs root, or user namespaces); or a skip."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    unshare = shutil.which("unshare")
    probe = subprocess.run([str(unshare or "unshare"), "-m", "sh", "-c",
                            f"mount -t tmpfs -o size=8k none {mnt}"], capture_output=True)
    if unshare is None or probe.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (unshare -m and mount need root)")
    script = f'mount -t tmpfs -o size=8k none {mnt} && exec "$@"'
    return mnt, ["unshare", "-m", "sh", "-c", script, "sh"]


def test_disk_full(tmp_path):
    mnt, prefix = _tiny_filesystem(tmp_path)
    # a few points: their files and tables outgrow 8 KiB
    args = TINY_SWEEP + ["--depths", "1-4", "--out", mnt / "s"]  # the last --depths counts
    _assert_user_error(args, prefix=prefix, expect="No space left on device")


def test_resume_needs_out():
    msg = _one_error_line(_cli(*TINY_SWEEP, "--resume").stderr, "sweep")
    assert "--resume" in msg and "--out" in msg


@pytest.mark.parametrize("args, expect", [
    (["--samples", "1e30"], "samples"),
    (["--samples", "inf"], "samples"),
    (["--samples", "-5"], "samples"),
    (["--seed", str(2**70)], "seed"),
    (["--threads", "0"], "threads"),
    (["--weights", "1e400"], "weights"),
    (["--depths", "0"], "depth"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_absurd_numbers_are_one_line(args, expect, capsys):
    # in this process: the same main() as the console script, at no start-up cost
    code = main(TINY_SWEEP + args)
    err = capsys.readouterr().err
    assert code in (1, 2)  # 1 while the API lets an OverflowError through (a bug: the hint says so)
    msg = _one_error_line(err, "sweep")
    assert expect in msg or "--debug" in msg, msg


@pytest.mark.parametrize("args", [
    ["verify", "--depths", "0"], ["bench", "--repeat", "0"], ["bench", "--sizes", "1e400"],
    ["bench", "--depth", "-1"],
])
def test_absurd_numbers_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"gradkern {args[0]}: error: argument {args[1]}" in err


# -- bugs ------------------------------------------------------------------------------------

def test_unexpected_exception_is_one_line_with_a_hint(tmp_path):
    # a bug stands in as a KeyError raised by the plot command
    code = ("import sys, gradkern.cli as c\n"
            "def bug(args):\n    return {}['layers']\n"
            "c.cmd_plot = bug\nsys.exit(c.main(sys.argv[1:]))")
    run = [sys.executable, "-c", code]
    p = subprocess.run([*run, "plot", tmp_path], capture_output=True, text=True)
    assert p.returncode == 1
    msg = _one_error_line(p.stderr, "plot")
    assert "KeyError" in msg and "'layers'" in msg and "--debug" in msg
    for extra, env in (([tmp_path, "--debug"], {}), ([tmp_path], {"GRADKERN_DEBUG": "1"})):
        d = subprocess.run([*run, "plot", *extra], capture_output=True, text=True,
                           env={**os.environ, **env})
        assert d.returncode == 1 and "Traceback (most recent call last)" in d.stderr, d.stderr


def test_exit_codes_in_help():
    p = _cli("--help")
    assert p.returncode == 0
    for code in EXIT_CODES:
        assert f"\n  {code} " in p.stdout, p.stdout


# -- Ctrl-C and a closed pipe ----------------------------------------------------------------

def test_ctrl_c_says_interrupted_once_with_the_resume_hint(tmp_path):
    d = tmp_path / "run"
    # ~1e9 samples: runs until interrupted.  SIGINT back to its default in the child: a
    # shell that starts pytest in the background hands it down ignored.
    proc = subprocess.Popen(_cmd() + ["sweep", "--activations", "ReLU", "--depths", "1",
                                      "--samples", "1e9", "--backend", "cpu", "--quiet",
                                      "--no-plots", "--out", str(d)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not (d / "manifest.json").exists() and proc.poll() is None and time.time() - t0 < 60:
        time.sleep(0.02)
    time.sleep(0.5)  # into the kernel's compilation or first chunks
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count(": interrupted") == 1, err
    assert err.splitlines() == [f"gradkern sweep: interrupted; finished points are in {d}; "
                                "continue with the same arguments and --resume"]


def test_closed_stdout_is_quiet():
    # the reader closes the pipe before any output (as `| head -1` does after its line)
    proc = subprocess.Popen(_cmd() + ["vanishing", "--seed", "0", "--json", "--samples", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.communicate(timeout=120)[1].decode()
    assert err == "" and proc.returncode == 141, (proc.returncode, err)


# -- one meaning per option ------------------------------------------------------------------

def _rrelu_chain(capsys, *extra):
    assert main(["chain", "--activation", "RReLU", "--param", "training=true", "--x", "-1",
                 "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)["weight_grads"]


def test_chain_torch_seed(capsys):
    first = _rrelu_chain(capsys, "--torch-seed", "3")
    assert _rrelu_chain(capsys, "--torch-seed", "3") == first
    assert _rrelu_chain(capsys, "--torch-seed", "4") != first
    r = experiments.chain(gk.activation("RReLU", training=True), x=-1.0, torch_seed=3)
    assert r["weight_grads"] == first


@pytest.mark.parametrize("flag", ["--seed", "--torch"])  # not a Philox seed; no abbreviations
def test_chain_refuses_seed_and_abbreviations(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["chain", "--activation", "RReLU", flag, "3"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage: gradkern chain" in err
    assert f"gradkern chain: error: unrecognized arguments: {flag} 3" in err
