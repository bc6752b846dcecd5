"""The sweep plots stay legible at every activation of the registry and with
several distributions or weights: one panel per family, no two activations
alike in colour and line style, a shared log axis clipped to a bounded
number of decades with what lies below marked, labelled axes, and file names
that say which setting each plot is of, as docs/sweeps.md documents them."""
import math
import re
from pathlib import Path

import numpy as np
import pytest

import gradkern as gk
from gradkern.sweeps.grid import make_grid
from gradkern.sweeps.table import SweepResult

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gradkern import plots  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"
DEPTH = 30


def _labels():
    """Every activation's label as a sweep over "all" writes it."""
    return list(dict.fromkeys(p.describe()["activation"]
                              for p in make_grid("all", 1, "normal:0,1", 1.0, None)))


def _profile(k, layer):
    """mean |df/dw_layer| of activation number k: flat, vanishing like
    Sigmoid (to ~1e-20 at layer 1), exploding, or exactly 0."""
    kind = k % 4
    if kind == 0:
        return 0.4
    if kind == 1:
        return 0.2 * 0.2 ** (DEPTH - layer)
    if kind == 2:
        return 0.5 * 1.05 ** (DEPTH - layer)
    return 0.0 if layer < DEPTH else 0.01


def _synthetic(dists=("normal:0,1",), weights=(1.0,), labels=None):
    """A SweepResult from table rows: every activation at depths 1 and DEPTH."""
    rows, point = [], 0
    for dist in dists:
        for weight in weights:
            for k, act in enumerate(labels or _labels()):
                for depth in (1, DEPTH):
                    for layer in range(1, depth + 1):
                        v = _profile(k, layer + DEPTH - depth)
                        rows.append({"point": point, "activation": act, "depth": depth,
                                     "dist": dist, "weight": weight, "layer": layer,
                                     "samples": 10**6, "seed": 0, "dtype": "float32",
                                     "mean_abs_grad": v, "mean_log10_abs_grad":
                                         math.log10(v) if v > 0 else None})
                    point += 1
    return SweepResult.from_table(rows)


@pytest.fixture(scope="module")
def every():
    return _synthetic()


def test_every_registry_activation_has_a_family():
    names = {n for _, _, members in plots.FAMILIES for n in members}
    assert set(gk.ACTIVATIONS) <= names
    assert all(plots.family_of(a) != plots.OTHER for a in _labels())


def _lines(fig):
    """(axes, label, colour, line style) of every legend entry of ``fig``."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for line in ax.get_lines():
            if not line.get_label().startswith("_") and line.get_linestyle() != "None":
                out.append((ax, line.get_label(), matplotlib.colors.to_hex(line.get_color()),
                            line.get_linestyle()))
    return out


def test_layers_plot_tells_every_activation_apart(every):
    fig = plots.layers_figure(every, ("normal:0,1", 1.0, None), plt)
    lines = _lines(fig)
    labels = [lab.partition(":")[0] for _, lab, _, _ in lines]
    assert sorted(labels) == sorted(plots.short_label(a) for a in _labels())  # all 23, once
    pairs = [(c, ls) for _, _, c, ls in lines]
    assert len(set(pairs)) == len(pairs)  # no two alike in colour and line style
    for ax in {ax for ax, _, _, _ in lines}:  # and within a panel, no two colours alike
        colours = [c for a, _, c, _ in lines if a is ax]
        assert len(set(colours)) == len(colours)
    # one panel per family, titled
    titles = {ax.get_title() for ax, _, _, _ in lines}
    assert titles == {title for title, _, _ in plots.FAMILIES}
    plt.close(fig)


def test_layers_plot_has_a_shared_clipped_log_axis_with_off_scale_values_marked(every):
    fig = plots.layers_figure(every, ("normal:0,1", 1.0, None), plt)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    limits = {ax.get_ylim() for ax in axes}
    assert len(limits) == 1 and all(ax.get_yscale() == "log" for ax in axes)
    bottom, top = limits.pop()
    # the data span 20 decades (0.2**29 ~ 5e-21); the axis at most MAX_DECADES + marks
    assert math.log10(top / bottom) <= plots.MAX_DECADES + 2
    labels = [lab for _, lab, _, _ in _lines(fig)]
    # the vanishing ones name the layers under the axis, the zero ones their zeros
    assert sum("\u25bc 1-" in lab for lab in labels) == len(_labels()[1::4])
    assert sum("\u00d7 0 at 1-29" in lab for lab in labels) == len(_labels()[3::4])
    # readable at the size the docs show it (~0.7x): legend and ticks >= 9 pt
    fig.canvas.draw()
    for ax in axes:
        assert ax.get_legend().get_texts()[0].get_fontsize() >= 9
        assert ax.yaxis.get_major_ticks()[0].label1.get_fontsize() >= 9
    plt.close(fig)


def test_heatmap_has_labelled_axes_rows_by_family_and_clipped_colours(every):
    fig = plots.heatmap_figure(every, ("normal:0,1", 1.0, None), plt)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("activation") and ax.get_xlabel() == "depth L"
    rows = [t.get_text() for t in ax.get_yticklabels()]
    expect = [plots.short_label(a) for _, members in plots.by_family(_labels())
              for a in members]
    assert rows == expect and len(rows) == len(gk.ACTIVATIONS)
    image = ax.get_images()[0]
    assert image.norm.vmax - image.norm.vmin <= plots.MAX_DECADES + 1
    plt.close(fig)


def test_plot_file_names_say_which_setting(tmp_path):
    res = _synthetic(dists=("normal:0,1", "uniform:-3,3"), weights=(1.0, 0.5),
                     labels=["ReLU", "Sigmoid"])
    names = sorted(Path(p).name for p in plots.plot_sweep(res, tmp_path))
    assert names == sorted(f"{kind}-{d}-w{w}.png" for kind in ("layers", "heatmap")
                           for d in ("normal_0_1", "uniform_-3_3") for w in ("1.0", "0.5"))
    # only what differs is named
    assert plots.file_names("layers", [("normal:0,1", 1.0, None), ("normal:0,1", 0.5, None)],
                            ("", "w", "b")) == ["layers-w1.0.png", "layers-w0.5.png"]
    assert plots.file_names("growth", [("normal:0,1", 0.0), ("normal:0,1", "normal:0,0.1")],
                            ("", "b")) == ["growth-b0.0.png", "growth-bnormal_0_0.1.png"]
    assert plots.file_names("layers", [("normal:0,1", 1.0, None)], ("", "w", "b")) \
        == ["layers.png"]


def test_every_plot_file_name_is_documented():
    text = DOCS.read_text()
    for name in ("layers.png", "heatmap.png", "growth.png", "layers-<dist>-w<weight>-b<bias>.png",
                 "heatmap-<dist>-w<weight>-b<bias>.png", "growth-<dist>-b<bias>.png"):
        assert f"`{name}`" in text, name
    # the worked example in the docs is what the code writes
    example = re.search(r"`(layers-uniform_-3_3-w[^`]*\.png)`", text)
    assert example and example.group(1) in plots.file_names(
        "layers", [("normal:0,1", 1.0, None), ("uniform:-3,3", 0.5, None),
                   ("normal:0,1", 0.5, None), ("uniform:-3,3", 1.0, None)], ("", "w", "b"))


def test_a_table_without_points_plots(tmp_path):
    """gradkern plot on a directory of tables alone (docs/sweep/run-1e9)."""
    res = gk.load_sweep(Path(__file__).resolve().parents[1] / "docs" / "sweep" / "run-1e9")
    paths = plots.plot_sweep(res, tmp_path)
    assert sorted(Path(p).name for p in paths) == ["heatmap.png", "layers.png"]
    assert np.all([Path(p).stat().st_size > 10_000 for p in paths])


def test_a_table_without_records_takes_parameters_from_its_manifest():
    """growth.png's mean field needs the activation's parameters; a result
    read from tables alone has them only in its manifest."""
    label = "LeakyReLU(negative_slope=0.2)"
    rows = [{"point": 0, "activation": label, "depth": 1, "dist": "normal:0,1", "weight": 1.0,
             "layer": 1, "samples": 10, "seed": 0, "dtype": "float32", "mean_abs_grad": 0.5,
             "mean_log10_abs_grad": -0.3}]
    manifest = {"grid": [{"point": 0, "activation": label, "params": {"negative_slope": 0.2}}]}
    res = SweepResult.from_table(rows, manifest=manifest)
    assert plots._params_of(res, label) == {"negative_slope": 0.2}
