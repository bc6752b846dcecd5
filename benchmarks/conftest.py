"""Benchmark options: which sizes, activations, dtypes and libs to run.

    pytest benchmarks --benchmark-enable [--sizes 1e3,1e6] [--libs gradkern-cpu,torch-batched]
                      [--acts Tanh,ReLU] [--dtypes float32] [--depth 3]
"""
import numpy as np


def pytest_addoption(parser):
    g = parser.getgroup("gradkern benchmarks")
    g.addoption("--sizes", default="1e3,1e4,1e5,1e6,1e7,1e8", help="comma-separated N")
    g.addoption("--libs", default="gradkern-cpu,gradkern-cpu-w,torch-batched,torch-func,"
                                  "torch-compile,jax,jax-grad,seed-loop,memory-floor,"
                                  "memory-floor-w",
                help="comma-separated entries of gradkern.bench.cpu.LIBS")
    g.addoption("--acts", default="all", help="comma-separated activation names, or all")
    g.addoption("--dtypes", default="float32,float64")
    g.addoption("--depth", type=int, default=3)


def pytest_generate_tests(metafunc):
    import gradkern as gk

    opt = metafunc.config.getoption
    split = lambda s: [v.strip() for v in s.split(",") if v.strip()]  # noqa: E731
    if "n" in metafunc.fixturenames:
        metafunc.parametrize("n", [int(float(v)) for v in split(opt("--sizes"))])
    if "lib" in metafunc.fixturenames:
        metafunc.parametrize("lib", split(opt("--libs")))
    if "act_name" in metafunc.fixturenames:
        acts = list(gk.ACTIVATIONS) if opt("--acts") == "all" else split(opt("--acts"))
        metafunc.parametrize("act_name", acts)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", [np.dtype(d) for d in split(opt("--dtypes"))],
                             ids=split(opt("--dtypes")))
    if "depth" in metafunc.fixturenames:
        metafunc.parametrize("depth", [opt("--depth")])
