"""The chain_grad contract: shapes, dtypes, out=, bad input, input never modified."""
import os
import subprocess
import sys

import numpy as np
import pytest

import gradkern as gk


def test_shapes_and_dtype_rules():
    for dt, expect in [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64),
                       (np.int8, np.float64), (np.uint16, np.float64), (np.float16, np.float64)]:
        res = gk.chain_grad(np.arange(5).astype(dt), "ELU", [1.0, 2.0, 3.0])
        assert isinstance(res, gk.ChainGrad)
        assert res.output.shape == (5,) and res.weight_grads.shape == (5, 3)
        assert res.input_grad.shape == (5,)
        assert all(a.dtype == expect for a in res), dt


def test_list_input_is_float64():
    assert gk.chain_grad([1, 2], "Tanh", [1]).output.dtype == np.float64


def test_empty_input():
    res = gk.chain_grad(np.empty(0, np.float32), "Tanh", [1.0, 1.0])
    assert res.weight_grads.shape == (0, 2) and res.output.dtype == np.float32


def test_non_contiguous_and_non_native_input():
    x = np.linspace(-3, 3, 41)
    expect = gk.chain_grad(x[::2].copy(), "Softplus", [1.5, -0.5])
    for xin in (x[::2], x.astype(">f8")[::2]):
        got = gk.chain_grad(xin, "Softplus", [1.5, -0.5])
        for a, b in zip(got, expect):
            np.testing.assert_array_equal(a, b)


def test_inputs_never_modified():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    w = np.array([1.0, -2.0, 0.5], np.float32)
    x0, w0 = x.copy(), w.copy()
    gk.chain_grad(x, "Tanh", w)
    gk.chain_grad(x.astype(np.float64), "ReLU", w)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    x.flags.writeable = False
    w.flags.writeable = False
    gk.chain_grad(x, "SELU", w)  # read-only inputs are fine


def test_weights_rounded_to_input_dtype():
    x = np.array([0.3], np.float32)
    a = gk.chain_grad(x, "Tanh", [0.1, 0.7])
    b = gk.chain_grad(x, "Tanh", np.array([0.1, 0.7], np.float32))
    np.testing.assert_array_equal(a.weight_grads, b.weight_grads)


def test_out_is_filled_and_returned():
    x = np.linspace(-2, 2, 50)
    out = gk.ChainGrad(np.empty(50), np.empty((50, 3)), np.empty(50))
    res = gk.chain_grad(x, "ELU", [1, 2, 3], out=out)
    assert all(a is b for a, b in zip(res, out))
    ref = gk.chain_grad(x, "ELU", [1, 2, 3])
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a, b)
    # a plain tuple, and a non-contiguous weight_grads view
    big = np.empty((50, 6))
    res = gk.chain_grad(x, "ELU", [1, 2, 3], out=(np.empty(50), big[:, ::2], np.empty(50)))
    np.testing.assert_array_equal(big[:, ::2], ref.weight_grads)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"x": np.ones((3, 1))}, ValueError, r"x must be 1-D .* shape \(3, 1\)"),
    ({"x": 1.0}, ValueError, "x must be 1-D"),
    ({"x": np.ones(3, complex)}, TypeError, "real numbers"),
    ({"x": ["a", "b"]}, TypeError, "real numbers"),
    ({"x": np.ones(3, bool)}, TypeError, "real numbers"),
    ({"x": [[1.0], [1.0, 2.0]]}, TypeError, "array-like"),
    ({"weights": []}, ValueError, "at least one layer"),
    ({"weights": [[1.0, 2.0]]}, ValueError, "weights must be 1-D"),
    ({"weights": ["x"]}, TypeError, "weights must hold real"),
    ({"activation": "Swish"}, ValueError, "unknown activation 'Swish'; valid names"),
    ({"activation": 3}, TypeError, "activation must be"),
    ({"backend": "tpu"}, ValueError, "unknown backend 'tpu'; valid backends: cpu"),
    ({"noise": np.ones((3, 2))}, ValueError, "noise= is only for an activation that draws"),
])
def test_bad_input(kwargs, exc, match):
    args = {"x": np.ones(3), "activation": "Tanh", "weights": [1.0, 2.0], **kwargs}
    with pytest.raises(exc, match=match):
        gk.chain_grad(args.pop("x"), args.pop("activation"), args.pop("weights"), **args)


@pytest.mark.parametrize("out, exc, match", [
    ((np.empty(3), np.empty((3, 2))), TypeError, "out must be"),
    ((np.empty(3), np.empty((3, 3)), np.empty(3)), ValueError, r"out.weight_grads must have shape \(3, 2\)"),
    ((np.empty(3, np.float32), np.empty((3, 2)), np.empty(3)), ValueError, "out.output must have"),
    ((np.empty(3), np.empty((3, 2)), [0.0, 0.0, 0.0]), TypeError, "out.input_grad must be a numpy array"),
])
def test_bad_out(out, exc, match):
    with pytest.raises(exc, match=match):
        gk.chain_grad(np.ones(3), "Tanh", [1.0, 2.0], out=out)


def test_out_overlap_and_readonly_rejected():
    x = np.ones(3)
    ro = np.empty(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gk.chain_grad(x, "Tanh", [1.0], out=(ro, np.empty((3, 1)), np.empty(3)))
    with pytest.raises(ValueError, match="overlaps an input"):
        gk.chain_grad(x, "Tanh", [1.0], out=(x, np.empty((3, 1)), np.empty(3)))
    shared = np.empty(3)
    with pytest.raises(ValueError, match="overlaps out.output"):
        gk.chain_grad(x, "Tanh", [1.0], out=(shared, np.empty((3, 1)), shared))


def _caller_overlap_cases():
    """(x, weights, out, kwargs) where an out array aliases an array the caller
    passed, but not the copy gradkern converts it to."""
    x_int = np.arange(1, 5)  # int64 -> computed in float64 from a copy
    yield "int x", x_int, [1.0], (x_int.view(np.float64), np.empty((4, 1)), np.empty(4)), {}
    x_be = np.arange(1, 5).astype(">f8")  # byte-swapped -> a native copy
    yield ">f8 x", x_be, [1.0], (x_be.view(np.float64), np.empty((4, 1)), np.empty(4)), {}
    noise = np.full((4, 2), 0.25, np.float32)  # float32 noise for a float64 chain
    out = (np.empty(4), noise.view(np.float64), np.empty(4))
    yield "float32 noise", np.ones(4), [1.0], out, {"activation": "RReLU", "noise": noise[:, :1]}
    w = np.array([1.0, 2.0])  # float64 weights of a float32 chain
    yield "float64 weights", np.ones(4, np.float32), w, \
        (w.view(np.float32), np.empty((4, 2), np.float32), np.empty(4, np.float32)), {}


@pytest.mark.parametrize("case", list(_caller_overlap_cases()), ids=lambda c: c[0])
def test_out_may_not_overlap_what_the_caller_passed(case):
    _, x, w, out, kwargs = case
    kwargs = dict(kwargs)
    act = kwargs.pop("activation", "Tanh")
    before = [np.array(a, copy=True) for a in (x, w, kwargs.get("noise", 0.0))]
    with pytest.raises(ValueError, match="overlaps an input array"):
        gk.chain_grad(x, act, w, out=out, **kwargs)
    for a, b in zip((x, w, kwargs.get("noise", 0.0)), before):
        assert np.asarray(a).tobytes() == b.tobytes()


def test_byteswapped_float32_computes_in_float32():
    x = np.linspace(-3, 3, 13, dtype=np.float32)
    expect = gk.chain_grad(x, "ELU", [0.5, 2.0])
    got = gk.chain_grad(x.astype(">f4"), "ELU", [0.5, 2.0])
    for a, b in zip(got, expect):
        assert a.dtype == np.float32 and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("where", ["x", "out", "noise"])
def test_masked_arrays_are_refused(where):
    masked = np.ma.masked_array(np.ones(3), mask=[0, 1, 0])
    args = {"x": np.ones(3), "activation": "Tanh", "out": None}
    if where == "x":
        args["x"] = masked
    elif where == "out":
        args["out"] = (masked, np.empty((3, 1)), np.empty(3))
    else:
        args.update(activation="RReLU", noise=np.ma.masked_array(np.ones((3, 1))))
    with pytest.raises(TypeError, match=f"{where}.* is a numpy masked array.*mask"):
        gk.chain_grad(args.pop("x"), args.pop("activation"), [1.0], **args)


def test_other_ndarray_subclasses_written_in_place(tmp_path):
    out = np.memmap(tmp_path / "out.bin", dtype=np.float64, mode="w+", shape=(5,))
    res = gk.chain_grad(np.linspace(-1, 1, 5), "Tanh", [1.0], out=(out, np.empty((5, 1)),
                                                                     np.empty(5)))
    assert np.array_equal(out, np.tanh(np.linspace(-1, 1, 5)))
    assert np.shares_memory(res.output, out)


@pytest.mark.parametrize("act", ["Tanh", gk.activation("RReLU", training=False)])
def test_seed_only_for_rrelu_training(act):
    with pytest.raises(ValueError, match=r"seed= is only for an activation that draws"):
        gk.chain_grad(np.ones(3), act, [1.0], seed=0)


def test_noise_and_seed_not_both():
    with pytest.raises(ValueError, match="noise= or seed=, not both"):
        gk.chain_grad(np.ones(3), "RReLU", [1.0], noise=np.full((3, 1), 0.2), seed=0)


@pytest.mark.parametrize("x_dtype, kwargs, match", [
    (np.float32, {"weights": [1e300]}, "weights holds 1e\\+300, which overflows float32"),
    (np.float32, {"activation": "RReLU", "noise": np.full((3, 1), -1e300)},
     "noise holds -1e\\+300, which overflows float32"),
    (np.longdouble, {"x": np.full(3, np.longdouble(10) ** 400)},
     "x holds 1e\\+400, which overflows float64"),
])
def test_values_overflowing_the_dtype_are_refused(x_dtype, kwargs, match):
    if "x" in kwargs and np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("longdouble is float64 here")
    args = {"x": np.ones(3, x_dtype), "activation": "Tanh", "weights": [1.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        gk.chain_grad(args.pop("x"), args.pop("activation"), args.pop("weights"), **args)


def test_torch_tensors_and_modules_accepted():
    import torch

    x = torch.linspace(-2, 2, 9)
    res = gk.chain_grad(x, torch.nn.LeakyReLU(0.2), torch.tensor([1.0, -1.0]))
    ref = gk.chain_grad(x.numpy(), gk.activation("LeakyReLU", negative_slope=0.2), [1.0, -1.0])
    assert res.output.dtype == np.float32
    np.testing.assert_array_equal(res.weight_grads, ref.weight_grads)


def _run(code, env=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=e, check=True).stdout


def test_import_is_light():
    out = _run("import sys, gradkern; import numpy as np; "
               "gradkern.chain_grad(np.ones(3), 'Tanh', [1.0]); "
               "print(sorted(m for m in ('torch', 'matplotlib', 'jax', 'numba.cuda') if m in sys.modules))")
    assert out.strip() == "[]"


def test_compiled_kernels_cached_on_disk(tmp_path):
    """A second process loads the kernel from NUMBA_CACHE_DIR instead of compiling."""
    code = ("import numpy as np, gradkern as gk; from gradkern.chain.cpu import get_kernel; "
            "gk.chain_grad(np.ones(4, np.float32), 'Softsign', [1.0, 2.0]); "
            "k = get_kernel(gk.activation('Softsign').ops(), parallel=False); "
            "print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))")
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    first = _run(code, env).split()
    second = _run(code, env).split()
    assert first == ["0", "1"]
    assert second == ["1", "0"]
