"""A sweep's table as Parquet and xarray: ``results.parquet`` beside
``results.csv`` (typed columns, the manifest in its metadata), never out of
step with the CSV when a sweep is interrupted, refused when damaged;
``load_sweep`` reading a directory, its tables alone, or one table file;
``SweepResult.to_xarray()``."""
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradkern as gk
from gradkern.errors import SweepDirectoryError, SweepDirectoryWarning

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

#: 8 points: (Tanh, ReLU) x depths 1-2 x weights (a number, a distribution)
KW = dict(activations="Tanh,ReLU", depths="1-2", weights=[1.0, "normal:0,1.5"],
          samples=4096 + 3, seed=11, backend="cpu")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("parquet") / "s"
    return gk.sweep(out=d, **KW), d


def _no_seconds(points):
    return [{k: v for k, v in p.items() if k != "seconds"} for p in points]


def _csv_rows(d):
    return gk.load_sweep(d / "results.csv").rows


def test_parquet_has_typed_columns_and_the_manifest(swept):
    res, d = swept
    df = pd.read_parquet(d / "results.parquet")
    assert list(df.columns) == list(res.columns) and len(df) == len(res.rows) == 12
    for c in ("activation", "dist", "dtype"):
        assert isinstance(df[c].dtype, pd.CategoricalDtype), c
    assert list(df["activation"].cat.categories) == ["Tanh", "ReLU"]  # grid order
    for c in ("point", "depth", "layer", "samples"):
        assert df[c].dtype == np.int64, c
    assert df["seed"].dtype == np.uint64
    # one column, one type: mixed settings are text, a number as its repr
    assert set(df["weight"]) == {"1.0", "normal:0,1.5"}
    for c in res.columns[9:]:
        assert df[c].dtype == np.float64, c
    manifest = json.loads((d / "manifest.json").read_text())
    assert df.attrs["manifest"] == manifest
    assert res.manifest == manifest and res.to_pandas().attrs["manifest"] == manifest


def test_parquet_and_csv_load_back_exactly(swept):
    res, d = swept
    for name in ("results.parquet", "results.csv"):
        back = gk.load_sweep(d / name)
        assert back.rows == res.rows, name
        assert back.histograms == {} and back.records == []
    # a lone table file derives its points from the rows: growth rates, no df/dx
    for name in ("results.parquet", "results.csv"):
        lone = gk.load_sweep(d / name).points
        assert [p["growth_rate"] for p in lone] == [p["growth_rate"] for p in res.points]
        assert {p["input_grad_mean_abs"] for p in lone} == {None}


def test_numeric_settings_and_biases_are_float_columns(tmp_path):
    res = gk.sweep("ReLU", 2, weights=[1.0, 0.5], biases=[0.0, 0.25], samples=4096,
                   backend="cpu", out=tmp_path / "b")
    df = pd.read_parquet(tmp_path / "b" / "results.parquet")
    assert df["weight"].dtype == np.float64 and df["bias"].dtype == np.float64
    assert "bias_grad_mean_abs" in df.columns
    assert gk.load_sweep(tmp_path / "b" / "results.parquet").rows == res.rows


def _tables_only(d, dest):
    """A copy of the sweep directory ``d`` without points/ (as shipped)."""
    shutil.copytree(d, dest, ignore=shutil.ignore_patterns("points"))
    return dest


def test_a_directory_of_tables_alone_loads(swept, tmp_path):
    res, d = swept
    t = _tables_only(d, tmp_path / "t")
    back = gk.load_sweep(t)  # from the Parquet
    assert back.rows == res.rows and back.points == res.points and back.manifest == res.manifest
    (t / "results.parquet").unlink()
    back = gk.load_sweep(t)  # from results.csv and points.csv
    assert back.rows == res.rows and back.points == res.points


def test_the_docs_1e9_tables_load():
    res = gk.load_sweep(Path(__file__).parents[1] / "docs" / "sweep" / "run-1e9")
    assert len(res.points) == 17 and len(res.rows) == 17 * 3
    relu = next(r for r in res.rows if r["activation"] == "ReLU" and r["layer"] == 1)
    assert relu["samples"] == 10**9 and relu["mean_abs_grad"] == pytest.approx(0.398943, 1e-6)


def _rewrite_with_value_changed(path):
    df = pd.read_parquet(path)
    df.loc[3, "mean_abs_grad"] *= 1.0 + 2.0 ** -40  # attrs and checksum kept
    df.to_parquet(path, index=False)


def _flip_a_byte(path):
    """One bit of a statistic flipped where it is stored (a disk's damage)."""
    data = bytearray(path.read_bytes())
    value = pd.read_parquet(path)["rms_grad"][5]
    at = bytes(data).find(struct.pack("<d", value))
    assert at > 0
    data[at + 3] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _plain_frame(path):
    pd.read_parquet(path).assign(extra=1.0).to_parquet(path, index=False)


@pytest.mark.parametrize("damage", [_rewrite_with_value_changed, _flip_a_byte, _truncate,
                                    _plain_frame])
def test_a_damaged_parquet_is_refused_never_served(swept, tmp_path, damage):
    res, d = swept
    t = _tables_only(d, tmp_path / "t")
    damage(t / "results.parquet")
    with pytest.raises(SweepDirectoryError, match=r"results\.parquet is damaged"):
        gk.load_sweep(t / "results.parquet")
    # in a directory, named in a warning, and the CSV (the same rows) read instead
    with pytest.warns(SweepDirectoryWarning, match=r"results\.parquet is damaged .*"
                      r"read results\.csv instead"):
        back = gk.load_sweep(t)
    assert back.rows == res.rows


def test_a_parquet_of_another_sweep_is_refused(swept, tmp_path):
    res, d = swept
    other = tmp_path / "o"
    gk.sweep("ReLU", 1, samples=4096, backend="cpu", out=other)
    t = _tables_only(d, tmp_path / "t")
    shutil.copy(other / "results.parquet", t / "results.parquet")
    with pytest.warns(SweepDirectoryWarning, match="its manifest differs"):
        assert gk.load_sweep(t).rows == res.rows


def test_a_damaged_csv_names_its_line(swept, tmp_path):
    res, d = swept
    t = _tables_only(d, tmp_path / "t")
    (t / "results.parquet").unlink()
    lines = (t / "results.csv").read_text().splitlines()
    lines[3] = lines[3].replace("float32", "float32,x")
    (t / "results.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(SweepDirectoryError, match=r"results\.csv is damaged \(line 4 has"):
        gk.load_sweep(t)


class _Stop(Exception):
    pass


def _stop_after(n):
    seen = []

    def on_point(rec):
        seen.append(rec)
        if len(seen) == n:
            raise _Stop

    return on_point


def _parquet_agrees_with_csv(d):
    p = d / "results.parquet"
    return not p.exists() or gk.load_sweep(p).rows == _csv_rows(d)


def test_an_interrupted_sweep_never_leaves_a_parquet_out_of_step(swept, tmp_path):
    res, _ = swept
    d = tmp_path / "i"
    with pytest.raises(_Stop):
        gk.sweep(out=d, on_point=_stop_after(2), **KW)
    assert _parquet_agrees_with_csv(d) and {r["point"] for r in _csv_rows(d)} == {0, 1}
    # a resume writes the tables of the finished points first, Parquet included,
    # then appends each new point's rows to the CSV
    with pytest.raises(_Stop):
        gk.sweep(out=d, resume=True, on_point=_stop_after(2), **KW)
    assert {r["point"] for r in _csv_rows(d)} == {0, 1, 2, 3} and _parquet_agrees_with_csv(d)
    done = gk.sweep(out=d, resume=True, **KW)
    assert gk.load_sweep(d / "results.parquet").rows == done.rows == res.rows


def test_without_pyarrow_the_csv_is_written_and_no_stale_parquet_left(swept, tmp_path,
                                                                      monkeypatch):
    res, d = swept
    s = tmp_path / "s"
    shutil.copytree(d, s)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    (s / "points" / "00007.json").unlink()
    back = gk.sweep(out=s, resume=True, **KW)
    assert back.rows == res.rows and not (s / "results.parquet").exists()
    assert _csv_rows(s) == res.rows


def test_to_xarray_dimensions_coordinates_and_values(swept):
    pytest.importorskip("xarray")
    res, _ = swept
    ds = res.to_xarray()
    assert tuple(ds["mean_abs_grad"].dims) == ("activation", "depth", "dist", "weight", "layer")
    assert list(ds["activation"].values) == ["Tanh", "ReLU"]
    assert list(ds["depth"].values) == [1, 2] and list(ds["layer"].values) == [1, 2]
    assert list(ds["weight"].values) == ["1.0", "normal:0,1.5"]
    assert ds["dist"].values.tolist() == ["normal:0,1"]
    for r in res.rows:
        cell = ds.sel(activation=r["activation"], depth=r["depth"], dist=r["dist"],
                      weight=repr(r["weight"]) if isinstance(r["weight"], float) else r["weight"],
                      layer=r["layer"])
        assert float(cell["mean_abs_grad"]) == r["mean_abs_grad"]
        assert float(cell["zero_fraction"]) == r["zero_fraction"]
    # layer 2 of a depth-1 point does not exist
    assert np.isnan(ds["mean_abs_grad"].sel(depth=1, layer=2)).all()
    p = res.points[-1]
    assert tuple(ds["growth_rate"].dims) == ("activation", "depth", "dist", "weight")
    assert float(ds["input_grad_mean_abs"].sel(activation=p["activation"], depth=p["depth"],
                                                dist=p["dist"], weight=p["weight"])) \
        == p["input_grad_mean_abs"]
    assert json.loads(ds.attrs["manifest"]) == res.manifest
    assert (ds.attrs["samples"], ds.attrs["seed"], ds.attrs["dtype"]) == (4099, 11, "float32")


def test_to_xarray_with_numeric_weights_and_biases(tmp_path):
    pytest.importorskip("xarray")
    res = gk.sweep("ReLU", "1-2", weights=[1.0, 0.5], biases=[0.0, 0.25], samples=4096,
                   backend="cpu")
    ds = res.to_xarray()
    assert tuple(ds["bias_grad_mean_abs"].dims) == ("activation", "depth", "dist", "weight",
                                                    "bias", "layer")
    assert ds["weight"].dtype == np.float64 and list(ds["bias"].values) == [0.0, 0.25]
    assert "manifest" not in ds.attrs  # a sweep without out= has no manifest


def test_import_gradkern_loads_no_table_library():
    code = ("import sys, gradkern; print(sorted(m for m in ('pandas', 'pyarrow', 'xarray') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
