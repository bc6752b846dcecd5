"""Plots of a sweep (matplotlib, Agg backend, PNG).

- ``layers.png``: mean |df/dw_i| against layer i, log scale, one line per
  activation, at the deepest depth of the sweep (the vanishing profile);
- ``heatmap.png``: log10 mean |df/dw_1| (the first layer, where gradients
  vanish most) for activation x depth.

One pair per (distribution, weight[, bias]) of the grid; with more than one
pair the files are ``layers-<k>.png`` / ``heatmap-<k>.png`` and each title
names its pair.

- ``growth.png``, for a sweep over weight distributions ``normal:0,sigma_w``
  (two or more): per activation, the measured growth rate of the gradient per
  layer (``growth_rate``, at the deepest depth, with its standard error)
  against sigma_w, beside the mean-field rate log10(chi_1) / 2
  (:func:`gradkern.meanfield`, sigma_b from biases
  ``normal:0,sigma_b``, else 0), each zero crossing (the edge of chaos)
  marked.  One per (distribution, bias): ``growth-<k>.png`` if several.

Imported only by ``gradkern plot`` and ``sweep --out``.

gradkern never replaces a file it did not write: each PNG carries a
``Software: gradkern <version>`` text chunk, and outside a sweep directory
(whose file names are gradkern's) an existing PNG without it is refused.
"""
import errno
import io
import math
import os
import struct

import numpy as np

__all__ = ["plot_sweep", "plot_dir"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _software():
    from . import __version__

    return f"gradkern {__version__}"


def png_software(path):
    """The ``Software`` tEXt value of the PNG at ``path``; None if it has none
    or is not a PNG.  Reads chunk headers up to the image data only."""
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):  # matplotlib writes its text before the image
                return None
            if kind == b"tEXt":
                key, _, value = f.read(length).partition(b"\0")
                if key == b"Software":
                    return value.decode("latin-1")
                f.seek(4, os.SEEK_CUR)
            else:
                f.seek(length + 4, os.SEEK_CUR)


def _check_replace(path, own_dir):
    """Refuse to replace an existing ``path`` that gradkern did not write."""
    if own_dir or not os.path.lexists(path):
        return
    try:
        ours = (png_software(path) or "").startswith("gradkern ")
    except OSError:
        ours = False
    if not ours:
        raise FileExistsError(
            errno.EEXIST, "not written by gradkern, so gradkern does not replace it; move it "
            "or choose another output directory", path)


def _save(fig, path, plt):
    """``fig`` to ``path`` as a PNG marked as gradkern's, atomically."""
    from .sweeps.store import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": _software()})
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def _groups(result):
    keys = []
    for p in result.points:
        k = (p["dist"], p["weight"], p.get("bias"))
        if k not in keys:
            keys.append(k)
    return keys


def _setting(v):
    """A weight or bias setting for a title: 1.5, or its distribution."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def _in_group(r, dist, weight, bias):
    return r["dist"] == dist and r["weight"] == weight and r.get("bias") == bias


def _group_title(dist, weight, bias):
    return f"x ~ {dist}, weights {_setting(weight)}" + (
        "" if bias is None else f", biases {_setting(bias)}")


def _acts(result):
    out = []
    for p in result.points:
        if p["activation"] not in out:
            out.append(p["activation"])
    return out


def _colors(n):
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


def plot_layers(result, group, path, plt):
    rows = [r for r in result.rows if _in_group(r, *group)]
    if not rows:
        return None
    depth = max(r["depth"] for r in rows)
    acts = _acts(result)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    floor = None
    # several activations share a profile (ReLU, ReLU6, PReLU ... at weight 1):
    # line styles keep the overlapping ones distinguishable
    styles = ["-", "--", ":", "-."]
    for n_act, (act, color) in enumerate(zip(acts, _colors(len(acts)))):
        rs = sorted((r for r in rows if r["activation"] == act and r["depth"] == depth),
                    key=lambda r: r["layer"])
        if not rs:
            continue
        y = np.array([r["mean_abs_grad"] if r["mean_abs_grad"] is not None else np.nan
                      for r in rs], dtype=float)
        x = [r["layer"] for r in rs]
        pos = y[y > 0]
        if pos.size:
            floor = pos.min() if floor is None else min(floor, pos.min())
        # a zero mean has no log: say so in the legend rather than leave a silent gap
        zeros = int(np.sum(y == 0))
        label = act if not zeros else (f"{act} (all 0)" if zeros == len(y)
                                       else f"{act} (0 at {zeros} layers)")
        ax.plot(x, np.where(y > 0, y, np.nan), marker="os^vD"[n_act % 5], ms=3.5, lw=1.4,
                ls=styles[n_act % 4], color=color, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("layer i (1 = nearest the input)")
    ax.set_ylabel("mean |df/dw_i|")
    n = rows[0]["samples"]
    ax.set_title(f"Gradient per layer, depth {depth}, {_group_title(*group)}, "
                 f"N = {n:.3g} per activation", fontsize=10)
    ax.set_xticks(range(1, depth + 1, max(1, depth // 15)))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5),
              frameon=False)
    fig.tight_layout()
    _save(fig, path, plt)
    return path


def plot_heatmap(result, group, path, plt):
    rows = [r for r in result.rows if _in_group(r, *group) and r["layer"] == 1]
    if not rows:
        return None
    acts = _acts(result)
    depths = sorted({r["depth"] for r in rows})
    grid = np.full((len(acts), len(depths)), np.nan)
    zero = np.zeros_like(grid, dtype=bool)
    for r in rows:
        i, j = acts.index(r["activation"]), depths.index(r["depth"])
        v = r["mean_abs_grad"]
        if v is not None and v > 0:
            grid[i, j] = math.log10(v)
        elif v == 0:
            zero[i, j] = True
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.32 * len(depths)), 1.4 + 0.3 * len(acts)),
                           dpi=110)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # set_bad: deprecated in 3.11
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, interpolation="nearest")
    for i, j in zip(*np.nonzero(zero)):
        ax.text(j, i, "0", ha="center", va="center", fontsize=7, color="0.3")
    ax.set_yticks(range(len(acts)), acts, fontsize=8)
    step = max(1, len(depths) // 15)
    ax.set_xticks(range(0, len(depths), step), [str(d) for d in depths[::step]], fontsize=8)
    ax.set_xlabel("depth L")
    ax.set_title(f"log10 mean |df/dw_1|, {_group_title(*group)}", fontsize=10)
    fig.colorbar(im, ax=ax, label="log10 mean |df/dw_1|")
    fig.tight_layout()
    _save(fig, path, plt)
    return path


def _sigma(setting):
    """sigma of a ``normal:0,sigma`` setting (a str), else None."""
    if not isinstance(setting, str) or not setting.startswith("normal:"):
        return None
    mu, _, sigma = setting[len("normal:"):].partition(",")
    return float(sigma) if float(mu) == 0 else None


def _growth_groups(result):
    """(dist, bias) groups with two or more weight settings normal:0,sigma."""
    out = []
    for p in result.points:
        key = (p["dist"], p.get("bias"))
        if _sigma(p["weight"]) is not None and key not in out:
            sigmas = {_sigma(q["weight"]) for q in result.points
                      if (q["dist"], q.get("bias")) == key} - {None}
            if len(sigmas) >= 2:
                out.append(key)
    return out


def _sigma_b(bias):
    """Mean field's sigma_b of a bias setting: normal:0,s -> s, none or 0 -> 0,
    else None (a fixed non-zero bias is no Gaussian bias: no prediction)."""
    if bias is None or bias == 0.0:
        return 0.0
    return _sigma(bias)


def zero_crossings(x, y):
    """The x where the piecewise-linear y(x) crosses 0 (sign changes, and exact zeros)."""
    out = []
    for i in range(len(x) - 1):
        y0, y1 = y[i], y[i + 1]
        if not (np.isfinite(y0) and np.isfinite(y1)):
            continue
        if y0 == 0:
            out.append(float(x[i]))
        elif y0 * y1 < 0:
            out.append(float(x[i] - y0 * (x[i + 1] - x[i]) / (y1 - y0)))
    if len(y) and y[-1] == 0:
        out.append(float(x[-1]))
    return out


def measured_growth(result, group):
    """{activation: (sigma_w, rate, standard error)} of a growth group, the
    deepest depth of each (activation, sigma_w), sorted by sigma_w."""
    dist, bias = group
    best = {}
    for p in result.points:
        s = _sigma(p["weight"])
        if s is None or (p["dist"], p.get("bias")) != group:
            continue
        key = (p["activation"], s)
        if key not in best or p["depth"] > best[key]["depth"]:
            best[key] = p
    out = {}
    for act in _acts(result):
        pts = sorted((s, p) for (a, s), p in best.items() if a == act)
        if pts:
            out[act] = tuple(np.array([v if v is not None else np.nan for v in col], dtype=float)
                             for col in zip(*[(s, p["growth_rate"], p["growth_rate_se"])
                                              for s, p in pts]))
    return out


def meanfield_growth(act_label, params, sigmas, sigma_b):
    """log10(chi_1) / 2 of ``act_label`` (with ``params``) at each sigma_w."""
    from .activations import activation
    from .mean_field import meanfield

    act = activation(act_label.partition("(")[0], **params)
    return np.array([meanfield(act, s, sigma_b).growth_rate for s in sigmas])


def _params_of(result, act_label):
    for r in result.records:
        if r["activation"] == act_label:
            return r.get("params", {})
    return {}


def plot_growth(result, group, path, plt):
    """growth.png: measured and mean-field growth rate per layer against sigma_w."""
    data = measured_growth(result, group)
    if not data:
        return None
    dist, bias = group
    sigma_b = _sigma_b(bias)
    n_act = len(data)
    cols = min(3, n_act)
    rows = -(-n_act // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), dpi=110,
                             squeeze=False, sharex=True)
    lo = min(float(np.nanmin(d[0])) for d in data.values())
    hi = max(float(np.nanmax(d[0])) for d in data.values())
    fine = np.linspace(lo, hi, 121)
    depth = max(p["depth"] for p in result.points)
    for ax, (act, (s, rate, se)) in zip(axes.flat, data.items()):
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.errorbar(s, rate, yerr=np.where(np.isfinite(se), se, 0.0), marker="o", ms=3.5,
                    lw=1.3, capsize=2, color="C0", label="width 1 (sweep)")
        for z in zero_crossings(s, rate):
            ax.axvline(z, color="C0", ls="--", lw=0.9)
            ax.annotate(f"{z:.2f}", (z, 0), xytext=(3, 6), textcoords="offset points",
                        color="C0", fontsize=7.5)
        if sigma_b is not None:
            with np.errstate(divide="ignore"):
                mf = meanfield_growth(act, _params_of(result, act), fine, sigma_b)
            ax.plot(fine, np.where(np.isfinite(mf), mf, np.nan), color="C3", lw=1.3,
                    label="mean field log10(chi_1)/2")
            for z in zero_crossings(fine, mf):
                ax.axvline(z, color="C3", ls=":", lw=0.9)
                ax.annotate(f"{z:.2f}", (z, 0), xytext=(3, -12), textcoords="offset points",
                            color="C3", fontsize=7.5)
        ax.set_title(act, fontsize=9.5)
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[n_act:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("sigma_w (weights ~ N(0, sigma_w^2))")
    for ax in axes[:, 0]:
        ax.set_ylabel("log10 growth of |df/dw| per layer")
    axes.flat[0].legend(fontsize=7.5, loc="best", frameon=False)
    n = result.points[0]["samples"]
    fig.suptitle(f"Gradient growth per layer toward the input, x ~ {dist}, biases "
                 f"{'none' if bias is None else _setting(bias)}, depth {depth}, N = {n:.3g}; "
                 "zero = edge of chaos", fontsize=9.5)
    fig.tight_layout()
    _save(fig, path, plt)
    return path


def plot_sweep(result, outdir):
    """Draw the plots of a :class:`~gradkern.sweep.SweepResult` into ``outdir``
    (created if missing); return the paths written.

    Outside a sweep directory an existing PNG of the same name that gradkern
    did not write is not replaced: FileExistsError names it, before any plot
    is drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .sweeps.store import is_sweep_dir

    os.makedirs(outdir, exist_ok=True)
    groups = _groups(result)
    names = [(group, f"{name}{f'-{k}' if len(groups) > 1 else ''}.png", fn)
             for k, group in enumerate(groups, 1)
             for fn, name in ((plot_layers, "layers"), (plot_heatmap, "heatmap"))]
    growth = _growth_groups(result)
    names += [(group, f"growth{f'-{k}' if len(growth) > 1 else ''}.png", plot_growth)
              for k, group in enumerate(growth, 1)]
    own_dir = is_sweep_dir(outdir)
    for _, name, _ in names:
        _check_replace(os.path.join(outdir, name), own_dir)
    paths = []
    for group, name, fn in names:
        p = fn(result, group, os.path.join(outdir, name), plt)
        if p:
            paths.append(p)
    return paths


def plot_dir(path, outdir=None):
    """Redraw the plots of the sweep directory ``path`` (finished points only)."""
    from .sweeps import load

    return plot_sweep(load(path), outdir or path)
