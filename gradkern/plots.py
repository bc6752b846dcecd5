"""Plots of a sweep (matplotlib, Agg backend, PNG).

- ``layers.png``: mean |df/dw_i| against layer i at the deepest depth of the
  sweep (the vanishing profile), one panel per family of activations
  (:data:`FAMILIES`: ReLU-like, ELU family, smooth and gated, sigmoid-like,
  shrink), each activation its own colour, line style and marker; one log
  axis shared by every panel and clipped to :data:`MAX_DECADES` below the
  largest value, values under it (and exact zeros) marked on the axis floor
  and named in the legend;
- ``heatmap.png``: log10 mean |df/dw_1| (the first layer, where gradients
  vanish most) for activation (rows grouped by family) x depth, colours
  clipped the same way.

One pair per (distribution, weight[, bias]) of the grid.  With more than one
pair each name says which (:func:`file_names`): ``layers-<dist>.png``,
``layers-w<weight>.png``, ``layers-<dist>-w<weight>-b<bias>.png`` ... with
only the settings that differ, ``:`` and ``,`` as ``_``
(``heatmap-uniform_-3_3-w0.5.png``).

- ``growth.png``, for a sweep over weight distributions ``normal:0,sigma_w``
  (two or more): per activation, the measured growth rate of the gradient per
  layer (``growth_rate``, at the deepest depth, with its standard error)
  against sigma_w, beside the mean-field rate log10(chi_1) / 2
  (:func:`gradkern.meanfield`, sigma_b from biases
  ``normal:0,sigma_b``, else 0), each zero crossing (the edge of chaos)
  marked.  One per (distribution, bias): ``growth-<dist>-b<bias>.png``
  (what differs) if several.

Imported only by ``gradkern plot`` and ``sweep --out``.

gradkern never replaces a file it did not write: each PNG carries a
``Software: gradkern <version>`` text chunk, and outside a sweep directory
(whose file names are gradkern's) an existing PNG without it is refused.
"""
import errno
import io
import math
import os
import re
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


#: the per-layer plot's panels and the heat map's row groups: activations by
#: the shape of their derivative; a label with parameters (``LeakyReLU(negative_slope=0.2)``)
#: goes by its name, an activation in none of these into a last panel "other"
FAMILIES = (
    ("ReLU-like, piecewise linear", "ReLU-like",
     ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "Threshold")),
    ("exponential (ELU family)", "ELU family", ("ELU", "CELU", "SELU")),
    ("smooth and gated", "smooth, gated",
     ("GELU", "SiLU", "Mish", "Hardswish", "Softplus", "LogSigmoid")),
    ("sigmoid-like, saturating", "sigmoid-like",
     ("Sigmoid", "Tanh", "Softsign", "Hardtanh", "Hardsigmoid")),
    ("shrink", "shrink", ("Softshrink", "Hardshrink", "Tanhshrink")),
)
OTHER = ("other", "other")
#: the shared log axis spans at most this many decades below the largest value:
#: Sigmoid at depth 30 reaches 1e-20 and would squeeze every other line into the
#: top third; what lies below is marked on the axis floor and named in the legend
MAX_DECADES = 8
#: 10 colours x 4 line styles: activation i gets colour i mod 10 and style
#: (i + i // 10) mod 4, so no two of up to 40 share both, and neighbours in a
#: panel differ in colour and in style; markers tell them apart in grey print
_STYLES = ("-", "--", ":", "-.")
_MARKERS = "osD^P*<>hd"  # no v or x: those mark values under the axis
#: font sizes (points) at dpi 100: the docs show the PNGs about 0.7x their size
_FONT = {"tick": 10, "label": 11.5, "legend": 9.5, "title": 12, "suptitle": 13}
_BELOW, _ZERO = "\u25bc", "\u00d7"  # marks under the axis floor: smaller, exactly 0
#: decades between rows of off-scale marks under the floor of the per-layer plot
_ROW_DECADES = 0.3


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


def family_of(label):
    """(title, short name) of the family of an activation label."""
    name = label.partition("(")[0]
    for title, short, names in FAMILIES:
        if name in names:
            return title, short
    return OTHER


def by_family(acts):
    """[((title, short), [labels])] in FAMILIES order, labels in their
    registry order within a family; empty families left out."""
    order = [f[:2] for f in FAMILIES] + [OTHER]
    rank = {n: k for _, _, names in FAMILIES for k, n in enumerate(names)}
    out = []
    for fam in order:
        members = [a for a in acts if family_of(a) == fam]
        members.sort(key=lambda a: rank.get(a.partition("(")[0], len(rank)))
        if members:
            out.append((fam, members))
    return out


def line_styles(acts):
    """{label: (colour, line style, marker)}, numbered in family order."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    out = {}
    i = 0
    for _, members in by_family(acts):
        for j, a in enumerate(members):
            out[a] = (cmap(i % 10), _STYLES[(i + i // 10) % len(_STYLES)],
                      _MARKERS[j % len(_MARKERS)])
            i += 1
    return out


def clipped_range(values, decades=MAX_DECADES):
    """(floor, top) of a log axis showing the positive ``values``: from the
    smallest, but at most ``decades`` below the largest; top padded a little."""
    pos = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not pos:
        return 0.1, 10.0
    top = max(pos)
    return max(min(pos), top * 10.0 ** -decades), top * 10 ** 0.3


def _runs(layers):
    """'1-9' / '1-3, 7' of sorted layer numbers."""
    out, start = [], None
    for k, a in enumerate(layers):
        if start is None:
            start = a
        if k + 1 == len(layers) or layers[k + 1] != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = None
    return ", ".join(out)


def _profiles(result, group):
    """(depth, {label: (layers, mean |df/dw|)}) at the group's deepest depth."""
    rows = [r for r in result.rows if _in_group(r, *group)]
    if not rows:
        return None, {}
    depth = max(r["depth"] for r in rows)
    out = {}
    for act in _acts(result):
        rs = sorted((r for r in rows if r["activation"] == act and r["depth"] == depth),
                    key=lambda r: r["layer"])
        if rs:
            out[act] = (np.array([r["layer"] for r in rs]),
                        np.array([np.nan if r["mean_abs_grad"] is None else r["mean_abs_grad"]
                                  for r in rs], dtype=float))
    return depth, out


def short_label(label):
    """An activation label without parameter names, for legends and rows:
    ``Threshold(threshold=0.1, value=20.0)`` -> ``Threshold(0.1, 20.0)``."""
    return re.sub(r"\b\w+=", "", label)


def _off_scale(y, floor):
    return (y > 0) & (y < floor), y == 0


def _draw_profile(ax, act, x, y, style, floor, row, stagger):
    """One activation's line; values below ``floor`` marked under it, on
    marker row ``row`` (a down triangle, or a cross for exactly 0) and named in
    its label.  Markers sit on every ``stagger[1]``-th layer from
    ``stagger[0]``, so lines that coincide (ReLU, ReLU6, PReLU ...) still
    show each one's marks."""
    color, ls, marker = style
    below, zero = _off_scale(y, floor)
    notes = []
    if below.any():
        notes.append(f"{_BELOW} {_runs(list(x[below]))} (to {np.nanmin(y[below]):.0e})")
    if zero.any():
        notes.append(f"{_ZERO} 0 at {_runs(list(x[zero]))}")
    label = short_label(act) + (": " + "; ".join(notes) if notes else "")
    ax.plot(x, np.where(y >= floor, y, np.nan), color=color, ls=ls, marker=marker, ms=5,
            lw=1.7, markevery=stagger, label=label)
    level = floor / 10 ** (_ROW_DECADES * (row + 1))
    for mask, m in ((below, "v"), (zero, "x")):
        if mask.any():
            ax.plot(x[mask], np.full(mask.sum(), level), ls="none", marker=m, ms=5, mew=1.4,
                    color=color)


def layers_figure(result, group, plt):
    """The per-layer figure of a (dist, weight, bias) group: one panel per
    family, shared clipped log axis; None if the group has no rows."""
    depth, profiles = _profiles(result, group)
    if not profiles:
        return None
    families = by_family(list(profiles))
    styles = line_styles(list(profiles))
    floor, top = clipped_range([v for _, y in profiles.values() for v in y])
    off = {a: np.any(np.logical_or(*_off_scale(profiles[a][1], floor))) for a in profiles}
    rows = max(sum(off[a] for a in members) for _, members in families)
    bottom = floor / 10 ** (_ROW_DECADES * (rows + 1))
    ncols = min(3, len(families))
    nrows = -(-len(families) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows + 0.9), dpi=100,
                             squeeze=False, sharex=True, sharey=True)
    for ax, ((title, _), members) in zip(axes.flat, families):
        row = 0
        for j, act in enumerate(members):
            _draw_profile(ax, act, *profiles[act], styles[act], floor, row,
                          (j % max(1, min(len(members), depth)), len(members)))
            row += off[act]
        if rows:
            ax.axhline(floor, color="0.45", lw=0.9, ls=(0, (5, 3)))
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
        ax.set_title(title, fontsize=_FONT["title"])
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(labelsize=_FONT["tick"])
        ax.legend(fontsize=_FONT["legend"], loc="best", frameon=True, framealpha=0.75,
                  handlelength=3.2)
    for ax in axes.flat[len(families):]:
        ax.set_visible(False)
    ax0 = axes.flat[0]
    ax0.set_xticks(range(1, depth + 1, max(1, -(-depth // 8))))
    ax0.set_xlim(0.5, depth + 0.5)
    for ax in axes[-1]:
        ax.set_xlabel("layer i (1 = nearest the input)", fontsize=_FONT["label"])
    for ax in axes[:, 0]:
        ax.set_ylabel("mean |df/dw_i|", fontsize=_FONT["label"])
    n = result.rows[0]["samples"]
    marks = [f"{m} {what}" for m, what, flag in (
        (_BELOW, f"smaller (the axis spans {MAX_DECADES} decades)",
         any(np.any(_off_scale(y, floor)[0]) for _, y in profiles.values())),
        (_ZERO, "exactly 0", any(np.any(y == 0) for _, y in profiles.values()))) if flag]
    note = (f"\nunder the dashed line: {', '.join(marks)}, at the layers the legend names"
            if marks else "")
    fig.suptitle(f"Gradient per layer at depth {depth}, {_group_title(*group)}, "
                 f"N = {n:.3g} per activation" + note, fontsize=_FONT["suptitle"])
    fig.tight_layout()
    return fig


def plot_layers(result, group, path, plt):
    fig = layers_figure(result, group, plt)
    if fig is None:
        return None
    _save(fig, path, plt)
    return path


def heatmap_figure(result, group, plt):
    """log10 mean |df/dw_1|, activation (grouped by family) x depth; colours
    clipped to MAX_DECADES; None if the group has no rows."""
    rows = [r for r in result.rows if _in_group(r, *group) and r["layer"] == 1]
    if not rows:
        return None
    families = by_family(_acts(result))
    acts = [a for _, members in families for a in members]
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
    top = np.nanmax(grid) if np.isfinite(grid).any() else 0.0
    # a whole number of decades, so the colour bar's "below" reads -8, not -7.8
    vmin = max(np.nanmin(grid) if np.isfinite(grid).any() else -1.0,
               math.floor(top) - MAX_DECADES)
    clipped = np.isfinite(grid) & (grid < vmin)
    fig, ax = plt.subplots(figsize=(max(7.5, 3.6 + 0.3 * len(depths)),
                                    max(3.6, 1.6 + 0.32 * len(acts))), dpi=100)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # set_bad: deprecated in 3.11
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap=cmap, interpolation="nearest",
                   vmin=vmin, vmax=top)
    for mask, text, color in ((zero, "0", "0.25"), (clipped, _BELOW, "white")):
        for i, j in zip(*np.nonzero(mask)):
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_yticks(range(len(acts)), [short_label(a) for a in acts], fontsize=_FONT["tick"])
    edge = -0.5
    centres = []
    for _, members in families:
        centres.append(edge + len(members) / 2)
        edge += len(members)
        ax.axhline(edge, color="white", lw=2.5)
    right = ax.secondary_yaxis("right")
    right.set_yticks(centres, [short for (_, short), _ in families], fontsize=_FONT["tick"])
    right.tick_params(length=0)
    step = max(1, -(-len(depths) // 15))
    ax.set_xticks(range(0, len(depths), step), [str(d) for d in depths[::step]],
                  fontsize=_FONT["tick"])
    ax.set_xlabel("depth L", fontsize=_FONT["label"])
    ax.set_ylabel("activation", fontsize=_FONT["label"])
    ax.set_title(f"log10 mean |df/dw_1| (first layer)\n{_group_title(*group)}, "
                 f"N = {rows[0]['samples']:.3g}", fontsize=_FONT["title"])
    bar = fig.colorbar(im, ax=ax, pad=0.16, extend="min" if clipped.any() else "neither")
    bar.set_label("log10 mean |df/dw_1|" + (f"  ({_BELOW}: below {vmin:g})"
                                            if clipped.any() else ""), fontsize=_FONT["label"])
    bar.ax.tick_params(labelsize=_FONT["tick"])
    fig.tight_layout()
    return fig


def plot_heatmap(result, group, path, plt):
    fig = heatmap_figure(result, group, plt)
    if fig is None:
        return None
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
    """The activation's parameters: from its records, or (a result read from
    tables alone, which has none) from the manifest's grid."""
    grid = (result.manifest or {}).get("grid", [])
    for r in [*result.records, *grid]:
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


def _slug(setting):
    """A setting in a file name: ``normal:0,1.5`` -> ``normal_0_1.5``, 1.0 -> ``1.0``."""
    text = repr(setting) if isinstance(setting, float) else str(setting)
    return re.sub(r"[^\w.+-]", "_", text)


def file_names(kind, groups, prefixes):
    """The PNG names of ``kind`` for each group (tuples of settings): ``kind.png``
    for one group, else ``kind-<part>-<part>.png`` naming the settings that
    differ between groups, each after its prefix (``layers-uniform_-3_3-w1.5.png``:
    distribution, then ``w`` weight, ``b`` bias)."""
    varying = [len({g[k] for g in groups}) > 1 for k in range(len(prefixes))]
    names = []
    for g in groups:
        parts = [pre + _slug(v) for pre, v, on in zip(prefixes, g, varying) if on]
        name = "-".join([kind, *parts]) + ".png"
        while name in names:  # two settings with one slug (normal:0,1 and normal:0_1)
            name = name[:-4] + "+.png"
        names.append(name)
    return names


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
    names = [(group, name, fn) for fn, kind in ((plot_layers, "layers"), (plot_heatmap, "heatmap"))
             for group, name in zip(groups, file_names(kind, groups, ("", "w", "b")))]
    growth = _growth_groups(result)
    names += [(group, name, plot_growth)
              for group, name in zip(growth, file_names("growth", growth, ("", "b")))]
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
