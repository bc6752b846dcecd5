from setuptools import find_packages, setup

setup(
    name="gradkern",
    version="0.1.0",
    description="Closed-form chain-rule gradients of 1-neuron activation chains as Numba "
                "kernels, checked against PyTorch autograd",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gradkern", "gradkern.*"]),
    python_requires=">=3.10",
    # tbb: numba's TBB threading layer (fork-safe, and the calling thread does
    # the work itself when the machine is busy: see docs/internals.md)
    install_requires=["numpy>=1.24", "numba>=0.59",
                      "tbb>=2021.6; platform_machine == 'x86_64' and sys_platform == 'linux'"],
    extras_require={
        # torch==2.13.0 is what the conventions were measured on; install it first
        # (CPU build) so pip does not pull a CUDA build for a looser pin
        "torch": ["torch==2.13.0"],
        # numba-cuda[cu13] in `test`: the CUDA backend's tests run on its simulator,
        # and its NVVM compiles the real kernels to PTX, with no GPU (CI);
        # sweeps: KS tests, plots, tables (Parquet, xarray), Dask LocalCluster; mpmath:
        # the accuracy test's truth (torch pulls it in too, but the test must not rely on that);
        # expecttest: torch.testing._internal imports it (the OpInfo test); jax[cpu]: the
        # JAX peers and the zero-copy DLPack test of a JAX array (~85 MB wheel, ~380 MB
        # installed, 9 s from a warm pip cache)
        "test": ["torch==2.13.0", "pytest>=7", "hypothesis>=6", "mpmath>=1.3",
                 "expecttest>=0.3", "numba-cuda[cu13]>=0.30", "scipy>=1.10", "matplotlib>=3.7",
                 "pandas>=2.1", "pyarrow>=14", "xarray>=2024.1", "dask[distributed]>=2024.1",
                 "jax[cpu]>=0.4"],
        "bench": ["torch==2.13.0", "pytest>=7", "pytest-benchmark>=4", "jax[cpu]>=0.4"],
        "cuda": ["numba-cuda[cu13]>=0.30"],
        # gradkern.sweep's optional parts: plots, to_pandas(), results.parquet, to_xarray(),
        # --dask. pandas >= 2.1 writes DataFrame.attrs (the manifest) into Parquet;
        # pyarrow >= 14 writes and verifies page checksums (~40 MB wheel, ~170 MB
        # installed); xarray is pure Python (~20 MB installed)
        "sweep": ["matplotlib>=3.7", "pandas>=2.1", "pyarrow>=14", "xarray>=2024.1",
                  "dask[distributed]>=2024.1"],
    },
    entry_points={"console_scripts": ["gradkern=gradkern.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Operating System :: POSIX :: Linux"],
)
