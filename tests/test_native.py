"""The native libraries of cuda/: they build, the host one passes the same parity
suite as the Numba CPU backend, and the C API behaves.

- the host library (g++, OpenMP) is built once per session in cuda/build/
  (``make -C cuda host``), where backend="native" looks for it;
- nvcc compiles cuda/ (the documented ``make -C cuda``, into a temporary
  folder), skipped only where nvcc is absent; CI has nvcc but no GPU;
- backend="native-cuda" runs only on a GPU: parity there, else its clear error.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import gradkern as gk
from gradkern.chain import native as _native
from gradkern import reference
from gradkern import verify

from .conftest import ACT_NAMES, PIECEWISE, default_activation

CUDA_DIR = Path(__file__).resolve().parent.parent / "cuda"

#: gk_activation 0..16 as first published: ABI, so these numbers never change
#: (a new activation takes the next number; this tuple is not extended)
PUBLISHED_ABI = ("ELU", "Hardtanh", "LeakyReLU", "LogSigmoid", "PReLU", "ReLU", "ReLU6",
                 "RReLU", "SELU", "CELU", "Sigmoid", "Softplus", "Softshrink", "Softsign",
                 "Tanh", "Tanhshrink", "Hardshrink")


def _header_enum():
    """gk_activation of cuda/gradkern.h: [(identifier, number)], GK_NUM_ACTIVATIONS."""
    text = (CUDA_DIR / "gradkern.h").read_text()
    body = re.search(r"typedef enum gk_activation \{(.*?)\} gk_activation;", text, re.S).group(1)
    *entries, (last, count) = [(k, int(v)) for k, v in re.findall(r"\b(GK_\w+)\s*=\s*(\d+)", body)]
    assert last == "GK_NUM_ACTIVATIONS"
    return entries, count


def _header_names():
    """The enum's identifiers as torch.nn names (GK_LEAKY_RELU -> LeakyReLU); an
    identifier matching no registry name stays as it is, and fails the tests."""
    by_key = {name.upper(): name for name in gk.ACTIVATIONS}
    return [by_key.get(ident[len("GK_"):].replace("_", ""), ident) for ident, _ in _header_enum()[0]]


def _list_pairs():
    """The (forward, backward) pair types that activations.h's list dispatches to."""
    text = (CUDA_DIR / "activations.h").read_text()
    rows = re.findall(r"X\(\s*GK_\w+\s*,\s*\"\w+\"\s*,\s*(\w+)\s*,\s*(\w+)\s*,", text)
    assert len(rows) == _header_enum()[1]
    return {t for row in rows for t in row} - {"void"}


def _nvcc():
    return shutil.which("nvcc") or next(
        (p for p in ("/usr/local/cuda/bin/nvcc",) if os.access(p, os.X_OK)), None)


def _make(*args):
    proc = subprocess.run(["make", "-C", str(CUDA_DIR), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def host_lib(native_host):
    """libgradkern_host.so and the C example, built where backend="native" finds them."""
    return native_host


@pytest.fixture(scope="session")
def cuda_build(tmp_path_factory):
    """The documented command, `make -C cuda`, from nothing, into a fresh folder."""
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found: cannot compile cuda/ (CI has it)")
    build = tmp_path_factory.mktemp("cuda-build")
    proc = _make(f"BUILD={build}", f"NVCC={nvcc}", "all", "ptx")
    return build, proc


@pytest.fixture(scope="session")
def cuda_lib(cuda_build):
    """The freshly built libgradkern_cuda.so, loaded (it loads without a driver)."""
    env = "GRADKERN_NATIVE_CUDA_LIB"
    old = os.environ.get(env)
    os.environ[env] = str(cuda_build[0] / "libgradkern_cuda.so")
    yield _native.load("native-cuda")
    if old is None:
        del os.environ[env]
    else:
        os.environ[env] = old


@pytest.fixture
def gpu(cuda_lib):
    if cuda_lib.gk_cuda_device_count() == 0:
        pytest.skip("no GPU here: native-cuda parity not run ("
                    + cuda_lib.gk_cuda_last_error().decode() + ")")
    return cuda_lib


# ---------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------
def test_make_builds_both_libraries_with_nvcc(cuda_build):
    build, proc = cuda_build
    for name in ("libgradkern_host.so", "libgradkern_cuda.so", "example", "bench"):
        assert (build / name).is_file(), name
    # no FMA contraction, no fast math: the flags the parity depends on
    assert "--fmad=false" in proc.stdout and "-ffp-contract=off" in proc.stdout
    assert "fast-math" not in proc.stdout and "use_fast_math" not in proc.stdout


def test_cuda_kernels_fuse_only_where_torch_does(cuda_build):
    """--fmad=false took: the only float fma.rn in the PTX are Tanh and Tanhshrink
    backward's explicit fma(-y, y, 1).  (fma.rn.f64 comes from libdevice's exp and
    tanh, which the float path evaluates in double, as the Numba one does.)"""
    ptx = (cuda_build[0] / "chain_sm90.ptx").read_text()
    kernels = re.split(r"\.entry\s+", ptx)[1:]
    pairs = _list_pairs()  # 14 (forward, backward) pairs serve the 17 activations
    assert len(kernels) == 2 * len(pairs)  # x float, double
    assert {re.search(r"gk\d+(\w+?Ops)", k).group(1) for k in kernels} == pairs
    fused = {re.search(r"gk\d+(\w+?)Ops", k).group(1) for k in kernels if "fma.rn.f32" in k}
    # the registry's explicit_fma activations, whose C++ pairs carry their names
    assert fused == {name for name, spec in gk.ACTIVATIONS.items() if spec.explicit_fma}


def test_native_cuda_without_gpu_is_a_clear_error(cuda_lib):
    if cuda_lib.gk_cuda_device_count() > 0:
        pytest.skip("a GPU is present: test_native_cuda_parity covers this library")
    with pytest.raises(_native.NativeLibraryError, match=r"needs an NVIDIA GPU.*backend='native'"):
        gk.chain_grad(np.ones(3, np.float32), "Tanh", [1.0], backend="native-cuda")


def test_example_program(host_lib):
    """The C example (a C program against gradkern.h) prints seed notebook 002."""
    proc = subprocess.run([str(CUDA_DIR / "build" / "example")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("df/dw = 0 0.16770685 0.30412468 0.43614534"), lines[0]
    assert lines[1].endswith("df/dw = 100 100 100 100"), lines[1]
    assert lines[2].startswith("depth 0 -> status 2: bad argument")


@pytest.mark.parametrize("backend", ["native", "native-cuda"])
def test_library_not_built_names_the_build_command(backend, monkeypatch, tmp_path):
    env = "GRADKERN_NATIVE_LIB" if backend == "native" else "GRADKERN_NATIVE_CUDA_LIB"
    missing = tmp_path / "nowhere" / "libgradkern.so"
    monkeypatch.setenv(env, str(missing))
    with pytest.raises(_native.NativeLibraryError) as info:
        gk.chain_grad([1.0], "ReLU", [1.0], backend=backend)
    msg = str(info.value)
    assert str(missing) in msg and "not built" in msg and "make -C" in msg and env in msg


def test_header_enum_follows_the_registry_and_the_library_agrees(host_lib):
    """gradkern.h's enum (literal: ABI) lists activations in gradkern.ACTIVATIONS'
    order, numbered 0, 1, ... (the Python side reads names up to the first NULL),
    without renumbering a published one; the library built from it reports
    exactly those (number, name) pairs, and gradkern maps its names through them."""
    entries, count = _header_enum()
    assert [number for _, number in entries] == list(range(count))
    names = _header_names()
    assert names == [n for n in gk.ACTIVATIONS if n in names]
    assert tuple(names[:len(PUBLISHED_ABI)]) == PUBLISHED_ABI
    assert [host_lib.gk_activation_name(i).decode() for i in range(count)] == names
    assert host_lib.gk_activation_name(count) is None
    assert _native.activation_ids("native") == {name: i for i, name in enumerate(names)}


def _renamed_library(tmp_path, name, new_name):
    """A copy of the built host library whose name table says ``new_name`` where
    it said ``name`` (same length, patched in place): a library built from other
    sources, without running a compiler."""
    data = _native.library_path("native").read_bytes()
    old, new = name.encode() + b"\0", new_name.encode() + b"\0"
    assert len(old) == len(new) and data.count(old) == 1  # the string, not a symbol
    copy = tmp_path / "libgradkern_host.so"
    copy.write_bytes(data.replace(old, new))
    return copy


def test_activation_missing_from_the_library_is_unavailable(host_lib, monkeypatch, tmp_path):
    """A library without one of gradkern's activations (built before it was added):
    that activation is a BackendUnavailableError naming it and the library; the
    library's other activations run, and a name gradkern does not know is ignored."""
    copy = _renamed_library(tmp_path, "Tanhshrink", "Tanhshrunk")
    x = np.linspace(-3, 3, 13)
    expect = gk.chain_grad(x, "Tanh", [1.5, -0.5], backend="native")
    monkeypatch.setenv("GRADKERN_NATIVE_LIB", str(copy))
    with pytest.raises(gk.BackendUnavailableError) as info:
        gk.chain_grad(x, "Tanhshrink", [1.5, -0.5], backend="native")
    msg = str(info.value)
    assert msg.startswith("Tanhshrink is not in this native library (") and str(copy) in msg
    assert "rebuild with `make -C" in msg
    got = gk.chain_grad(x, "Tanh", [1.5, -0.5], backend="native")
    for a, b in zip(got, expect):
        np.testing.assert_array_equal(a, b)


def test_library_without_the_c_api_is_refused(host_lib, monkeypatch, tmp_path):
    """GRADKERN_NATIVE_LIB pointing at a library without gradkern's entry points:
    a NativeLibraryError naming it, not ctypes' AttributeError."""
    src = tmp_path / "other.c"
    src.write_text('const char *gk_activation_name(int act) { return act ? 0 : "ELU"; }\n')
    lib = tmp_path / "libother.so"
    subprocess.run(["cc", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    monkeypatch.setenv("GRADKERN_NATIVE_LIB", str(lib))
    with pytest.raises(_native.NativeLibraryError, match="not a gradkern library of this version"):
        gk.chain_grad([1.0], "ELU", [1.0], backend="native")


def test_library_naming_two_activations_alike_is_refused(host_lib, monkeypatch, tmp_path):
    """A name table giving one name two numbers is a broken build: refused on load,
    whatever activation is asked for."""
    monkeypatch.setenv("GRADKERN_NATIVE_LIB",
                       str(_renamed_library(tmp_path, "Softshrink", "Hardshrink")))
    with pytest.raises(_native.NativeLibraryError, match="12 and 16 both 'Hardshrink'"):
        gk.chain_grad([1.0], "ReLU", [1.0], backend="native")


# ---------------------------------------------------------------------------
# parity against torch autograd: tests/test_parity.py (backend "native" and
# "native-cuda" are axes there); the native-only checks follow
# ---------------------------------------------------------------------------
def test_native_verify_run_rrelu_training(host_lib):
    """gradkern.verify.run, the CLI's suite, through the native backend."""
    results = list(verify.run(depths=(1, 4), names=["RReLU"], backend="native"))
    assert results and all(r.ok for r in results), [r.why for r in results if not r.ok]


@pytest.mark.parametrize("name", PIECEWISE)
def test_native_large_random_bit_identical(host_lib, name):
    """1e5 inputs: several OpenMP chunks on our side, SIMD bodies on torch's."""
    act = default_activation(name)
    x = np.random.default_rng(2).standard_normal(100_000).astype(np.float32) * 2
    w = np.array([0.9, -1.7, 1.1, 0.3], np.float32)
    ref = reference.per_sample_grads(x, act, w)
    res = gk.chain_grad(x, act, w, backend="native")
    for k, r in zip(res, ref):
        assert verify._bit_identical(k, r) == 1.0


@pytest.mark.parametrize("name", ACT_NAMES)
def test_native_equals_numba_cpu_bit_for_bit(host_lib, name, dtype):
    """Two independent implementations of the same conventions -- gradkern.cuh
    (g++) and gradkern/scalar.py (Numba/LLVM) -- agree to the bit wherever no
    transcendental is involved (the registry's ``transcendental`` flag), and
    within assert_close's tolerance otherwise: the C++ side evaluates float32
    exp/expm1/log1p/tanh in double via glibc, the Numba side with its own
    vectorisable float32 polynomials (gradkern._numba.vecmath, <= 1.7 ulp)."""
    import torch

    exact = not gk.ACTIVATIONS[name].transcendental
    act = gk.activations.fresh(name)  # RReLU in training mode: the same seeded noise
    x = np.concatenate([verify.test_inputs(act, dtype, n_random=20_000, seed=3),
                        np.random.default_rng(4).standard_normal(20_000).astype(dtype) * 30])
    # smooth ones only at depths 1 and 3: two float32 implementations a few ulp
    # apart drift apart through a 30-layer chain just as torch and gradkern do,
    # which the parity suite judges against float64 instead
    for depth in (1, 3, 30) if exact else (1, 3):
        for wname, w in verify.weight_sets(depth, seed=2).items():
            seed = 9 if act.stochastic else None
            a = gk.chain_grad(x, act, w, backend="cpu", seed=seed)
            b = gk.chain_grad(x, act, w, backend="native", seed=seed)
            assert b.backend == "native"
            for field, u, v in zip(a._fields, a, b):
                if exact:
                    assert verify._bit_identical(u, v) == 1.0, (depth, wname, field)
                else:
                    torch.testing.assert_close(u, v, equal_nan=True,
                                               msg=f"{depth} {wname} {field}")


def test_native_nan_and_kinks(host_lib, act_name, dtype):
    act = default_activation(act_name)
    x = np.array([np.nan, 1.0, -1.0, np.nan], dtype)
    seed = 0 if act.stochastic else None
    for arr in gk.chain_grad(x, act, [1.0, -2.0, 0.5], backend="native", seed=seed):
        assert np.isnan(arr[[0, 3]]).all()
    kinks = np.array(act.kinks(), dtype)
    np.testing.assert_array_equal(act.derivative(kinks),
                                  gk.chain_grad(kinks, act, [1.0], backend="native").input_grad)


def test_seed_notebook_002_native(host_lib):
    t = gk.chain_grad(np.array([100.0]), "Tanh", [1, 1, 1, 1], backend="native")
    np.testing.assert_allclose(t.weight_grads[0], [0.0, 0.16770685876939032,
                                                   0.3041246830975466, 0.436145382444544],
                               rtol=1e-15)
    t32 = gk.chain_grad(np.array([100.0], np.float32), "Tanh", [1, 1, 1, 1], backend="native")
    assert [f"{v:.8f}" for v in t32.weight_grads[0]] == \
        ["0.00000000", "0.16770685", "0.30412468", "0.43614534"]
    r = gk.chain_grad(np.array([100.0], np.float32), "ReLU", [1, 1, 1, 1], backend="native")
    assert r.weight_grads.tolist() == [[100.0] * 4]


# ---------------------------------------------------------------------------
# the API contract through the native backend, and the C API's own checks
# ---------------------------------------------------------------------------
def test_native_api_contract(host_lib):
    x = np.linspace(-3, 3, 41)
    # the expectation is native itself on a plain contiguous array: layouts must not matter
    expect = gk.chain_grad(x[::2].copy(), "Softplus", [1.5, -0.5], backend="native")
    for xin in (x[::2], x.astype(">f8")[::2], list(x[::2])):  # strided, big-endian, list
        got = gk.chain_grad(xin, "Softplus", [1.5, -0.5], backend="native")
        for a, b in zip(got, expect):
            np.testing.assert_array_equal(a, b)
    # ints -> float64, empty input, out= with a strided weight_grads view
    assert gk.chain_grad(np.arange(4), "ELU", [1.0], backend="native").output.dtype == np.float64
    empty = gk.chain_grad(np.empty(0, np.float32), "Tanh", [1.0, 1.0], backend="native")
    assert empty.weight_grads.shape == (0, 2) and empty.output.dtype == np.float32
    big = np.empty((21, 6))
    out = (np.empty(21), big[:, ::2], np.empty(21))
    res = gk.chain_grad(x[::2], "ELU", [1, 2, 3], out=out, backend="native")
    assert all(a is b for a, b in zip(res, out))
    np.testing.assert_array_equal(
        big[:, ::2], gk.chain_grad(x[::2].copy(), "ELU", [1, 2, 3], backend="native").weight_grads)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"x": np.ones((3, 1))}, ValueError, "x must be 1-D"),
    ({"x": np.ones(3, complex)}, TypeError, "real numbers"),
    ({"weights": []}, ValueError, "at least one layer"),
    ({"activation": "Swish"}, ValueError, "unknown activation"),
    ({"noise": np.ones((3, 1))}, ValueError, "only for an activation that draws"),
    ({"out": (np.empty(3), np.empty((3, 2)), np.empty(3))}, ValueError, "shape"),
])
def test_native_bad_input(host_lib, kwargs, exc, match):
    args = {"x": np.ones(3), "activation": "Tanh", "weights": [1.0]} | kwargs
    with pytest.raises(exc, match=match):
        gk.chain_grad(args.pop("x"), args.pop("activation"), args.pop("weights"),
                      backend="native", **args)


def test_c_api_statuses(host_lib):
    """What a C caller gets for bad arguments: a status, never a crash."""
    lib = host_lib
    count = _header_enum()[1]  # GK_NUM_ACTIVATIONS: the first number out of range
    f = np.ones(4, np.float32)
    p, w, x, y, gw, gx = (f.ctypes.data,) * 6
    call = lib.gk_chain_grad_f32
    assert call(14, p, w, 1, x, 1, None, y, gw, gx) == 0
    assert call(count, p, w, 1, x, 1, None, y, gw, gx) == 1  # no such activation
    assert call(-1, p, w, 1, x, 1, None, y, gw, gx) == 1
    assert call(14, p, w, 0, x, 1, None, y, gw, gx) == 2  # depth 0
    assert call(14, p, w, 1, x, -1, None, y, gw, gx) == 2  # n < 0
    assert call(14, p, w, 1, None, 1, None, y, gw, gx) == 2  # NULL x
    assert call(14, p, w, 1, None, 0, None, None, None, None) == 0  # n = 0 needs no arrays
    assert call(14, p, w, 1, x, 1, x, y, gw, gx) == 2  # noise for Tanh
    assert call(7, p, w, 1, x, 1, x, y, gw, gx) == 0  # ... fine for RReLU
    assert lib.gk_status_string(2).startswith(b"bad argument")
    assert lib.gk_activation_name(count) is None
    for act, name in enumerate(_header_names()):  # noise only where the registry draws it
        takes_noise = gk.ACTIVATIONS[name].slope_noise is not None  # RReLU
        assert call(act, p, w, 1, x, 1, x, y, gw, gx) == (0 if takes_noise else 2), name


def test_c_default_params_are_torch_defaults(host_lib, dtype):
    """gk_default_params_* (for C callers) against gradkern.activations.table, which
    the Python side passes instead: checked, not copied.  This is what catches a
    parameter slot whose meaning differs between the C++ list and the registry."""
    suffix = "f32" if dtype == np.float32 else "f64"
    ids = _native.activation_ids("native")
    assert ids
    for name, number in ids.items():
        got = np.zeros(4, dtype)
        assert getattr(host_lib, f"gk_default_params_{suffix}")(number, got.ctypes.data) == 0
        expect = np.array(default_activation(name).kernel_params(dtype), dtype)
        assert got.tobytes() == expect.tobytes(), name


# ---------------------------------------------------------------------------
# GPU only
# ---------------------------------------------------------------------------
def test_cli_verify_native(host_lib, monkeypatch, capsys):
    from gradkern.cli import main

    assert main(["verify", "--backend", "native", "--depths", "1,3", "--activations",
                 "ReLU,Tanh", "--seed", "1", "--quiet"]) == 0
    assert "32 passed, 0 failed" in capsys.readouterr().out
    monkeypatch.setenv("GRADKERN_NATIVE_LIB", "/nonexistent/libgradkern_host.so")
    assert main(["verify", "--backend", "native", "--depths", "1", "--quiet"]) == 2
    assert "make -C" in capsys.readouterr().err
