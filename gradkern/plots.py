"""Plots of a sweep (matplotlib, Agg backend, PNG).

- ``layers.png``: mean |df/dw_i| against layer i, log scale, one line per
  activation, at the deepest depth of the sweep (the vanishing profile);
- ``heatmap.png``: log10 mean |df/dw_1| (the first layer, where gradients
  vanish most) for activation x depth.

One pair per (distribution, weight) of the grid; with more than one pair the
files are ``layers-<k>.png`` / ``heatmap-<k>.png`` and each title names its
pair.  Imported only by ``gradkern plot`` and ``sweep --out``.

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
        k = (p["dist"], p["weight"])
        if k not in keys:
            keys.append(k)
    return keys


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


def plot_layers(result, dist, weight, path, plt):
    rows = [r for r in result.rows if r["dist"] == dist and r["weight"] == weight]
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
    ax.set_title(f"Gradient per layer, depth {depth}, x ~ {dist}, weights {weight:g}, "
                 f"N = {n:.3g} per activation", fontsize=10)
    ax.set_xticks(range(1, depth + 1, max(1, depth // 15)))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5),
              frameon=False)
    fig.tight_layout()
    _save(fig, path, plt)
    return path


def plot_heatmap(result, dist, weight, path, plt):
    rows = [r for r in result.rows
            if r["dist"] == dist and r["weight"] == weight and r["layer"] == 1]
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
    ax.set_title(f"log10 mean |df/dw_1|, x ~ {dist}, weights {weight:g}", fontsize=10)
    fig.colorbar(im, ax=ax, label="log10 mean |df/dw_1|")
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
    names = [(dist, weight, f"{name}{f'-{k}' if len(groups) > 1 else ''}.png", fn)
             for k, (dist, weight) in enumerate(groups, 1)
             for fn, name in ((plot_layers, "layers"), (plot_heatmap, "heatmap"))]
    own_dir = is_sweep_dir(outdir)
    for _, _, name, _ in names:
        _check_replace(os.path.join(outdir, name), own_dir)
    paths = []
    for dist, weight, name, fn in names:
        p = fn(result, dist, weight, os.path.join(outdir, name), plt)
        if p:
            paths.append(p)
    return paths


def plot_dir(path, outdir=None):
    """Redraw the plots of the sweep directory ``path`` (finished points only)."""
    from .sweeps import load

    return plot_sweep(load(path), outdir or path)
