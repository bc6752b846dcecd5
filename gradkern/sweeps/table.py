"""A sweep's results as a tidy table, and the record of one finished point.

``points/NNNNN.json`` holds a :func:`point_record`; :class:`SweepResult` turns
records into rows (one per point and layer), per-point rows and histograms.

Per point, the table also gives the gradient's growth rate per layer
(:func:`growth_rate`): the least-squares slope of mean log10|df/dw_k| against
L - k, the number of layers between layer k and the output, i.e. minus the
slope against k, so that it is log10 of the factor by which |df/dw| grows per
layer on its way back toward the input: negative when the gradient vanishes,
positive when it explodes, the sign of mean field's log10(chi_1) / 2.
"""
import json
import math

import numpy as np

from .stats import HIST_BINS, HIST_LO, HIST_WIDTH

__all__ = ["SweepResult", "point_record", "hist_array", "growth_rate", "ROW_COLUMNS",
           "POINT_COLUMNS", "BIAS_COLUMNS"]

ROW_COLUMNS = ("point", "activation", "depth", "dist", "weight", "layer", "samples", "seed",
               "dtype", "mean_abs_grad", "mean_grad", "rms_grad", "min_grad", "max_grad",
               "zero_fraction", "nan_fraction", "mean_log10_abs_grad")
_QUANTITIES = (("input_grad", "df/dx"), ("output", "f"))
_STAT_KEYS = ("mean_abs", "mean", "rms", "min", "max", "zero_fraction", "nan_fraction",
              "mean_log10_abs")
POINT_COLUMNS = ("point", "activation", "depth", "dist", "weight", "samples", "seed", "dtype",
                 "seconds", "backend") + tuple(
    f"{q}_{s}" for q, _ in _QUANTITIES for s in _STAT_KEYS) + ("growth_rate", "growth_rate_se")
#: per-layer columns a sweep with biases adds at the end (and "bias", its
#: setting, after "weight"): df/db_layer's statistics
BIAS_COLUMNS = tuple(f"bias_grad_{s}" for s in _STAT_KEYS)


def _finite_or_none(v):
    return v if isinstance(v, float) and math.isfinite(v) else (None if isinstance(v, float)
                                                                 else v)


def _hist_json(counts):
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return {"first": 0, "counts": []}
    return {"first": int(nz[0]), "counts": [int(c) for c in counts[nz[0]:nz[-1] + 1]]}


def hist_array(h):
    """Histogram counts (length HIST_BINS) from a point file's ``{"first", "counts"}``."""
    out = np.zeros(HIST_BINS, dtype=np.int64)
    out[h["first"]:h["first"] + len(h["counts"])] = h["counts"]
    return out


def _stats_json(s):
    return {**{key: s[key] for key in _STAT_KEYS}, "hist": _hist_json(s["hist"])}


def point_record(point, stats, samples, seed, dtype, seconds, backend):
    """The JSON-able record of a finished point (what points/NNNNN.json holds).
    With biases each layer also holds ``bias_grad``, the statistics of df/db."""
    L = point.depth
    layers = []
    for k in range(L):
        layers.append({"layer": k + 1, **_stats_json(stats[k])})
        if point.bias is not None:
            layers[-1]["bias_grad"] = _stats_json(stats[L + 2 + k])
    extra = {q: {**{key: stats[L + j][key] for key in _STAT_KEYS},
                 "hist": _hist_json(stats[L + j]["hist"])}
             for j, (q, _) in enumerate(_QUANTITIES)}
    return {**point.describe(), "samples": samples, "seed": seed, "dtype": str(dtype),
            "seconds": seconds, "backend": backend, "layers": layers, **extra}


def growth_rate(mean_logs):
    """(rate, standard error) of the gradient's growth per layer toward the input.

    ``mean_logs[k - 1]`` is mean log10|df/dw_k| of layers k = 1 .. L (None
    where no sample was non-zero, left out).  The rate is the least-squares
    slope against L - k; its standard error is the regression's,
    sqrt(residual sum of squares / (n - 2) / sum (x - mean x)^2), as
    ``scipy.stats.linregress`` gives it.  None for the rate with fewer than 2
    layers, for the error with fewer than 3.
    """
    pts = [(-float(k), y) for k, y in enumerate(mean_logs, 1)
           if y is not None and math.isfinite(y)]
    n = len(pts)
    if n < 2:
        return None, None
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean())) / sxx
    if n < 3:
        return slope, None
    res = y - y.mean() - slope * dx
    return slope, math.sqrt(float(res @ res) / (n - 2) / sxx)


class SweepResult:
    """The tidy table of a sweep.

    ``rows``: one dict per grid point and layer (columns :data:`ROW_COLUMNS`,
    statistics of df/dw_layer); ``points``: one dict per point with the
    statistics of df/dx (``input_grad_*``) and of the output (``output_*``);
    ``histograms[(point, layer)]``: counts of log10|df/dw_layer| on
    ``hist_edges`` (layer 0 = df/dx, L+1 = output).  Non-finite statistics
    (no valid sample) are None.  Each point also has ``growth_rate`` and
    ``growth_rate_se`` (:func:`growth_rate`).  With biases the rows gain
    :data:`BIAS_COLUMNS` (``bias_grad_mean_abs`` ...: df/db_layer) and
    ``bias_histograms[(point, layer)]`` holds log10|df/db_layer|.
    """

    #: the columns without biases; a SweepResult with biases has its own
    #: (``bias`` after ``weight``, :data:`BIAS_COLUMNS` at the end)
    columns = ROW_COLUMNS
    point_columns = POINT_COLUMNS
    #: inner bin edges of log10|g|; bin 0 is below the first, the last bin above the last
    hist_edges = HIST_LO + HIST_WIDTH * np.arange(HIST_BINS - 1)

    def __init__(self, records):
        self.records = sorted(records, key=lambda r: r["point"])
        self.rows, self.points, self.histograms, self.bias_histograms = [], [], {}, {}
        biased = any("bias" in r for r in self.records)
        # the columns of a sweep without biases are those it always had
        if biased:
            self.columns = ROW_COLUMNS[:5] + ("bias",) + ROW_COLUMNS[5:] + BIAS_COLUMNS
            self.point_columns = POINT_COLUMNS[:5] + ("bias",) + POINT_COLUMNS[5:]
        for r in self.records:
            base = {k: r[k] for k in ("point", "activation", "depth", "dist", "weight")}
            if biased:
                base["bias"] = r.get("bias")
            common = {"samples": r["samples"], "seed": r["seed"], "dtype": r["dtype"]}
            for lay in r["layers"]:
                row = {**base, "layer": lay["layer"], **common}
                for col, key in zip(ROW_COLUMNS[9:], _STAT_KEYS):
                    row[col] = _finite_or_none(lay[key])
                if biased:
                    db = lay.get("bias_grad", {})
                    for key in _STAT_KEYS:
                        row[f"bias_grad_{key}"] = _finite_or_none(db.get(key))
                    if "hist" in db:
                        self.bias_histograms[(r["point"], lay["layer"])] = hist_array(db["hist"])
                self.rows.append(row)
                self.histograms[(r["point"], lay["layer"])] = hist_array(lay["hist"])
            prow = {**base, **common, "seconds": r["seconds"], "backend": r["backend"]}
            for q, _ in _QUANTITIES:
                for key in _STAT_KEYS:
                    prow[f"{q}_{key}"] = _finite_or_none(r[q][key])
            prow["growth_rate"], prow["growth_rate_se"] = growth_rate(
                [_finite_or_none(lay["mean_log10_abs"]) for lay in r["layers"]])
            self.points.append(prow)
            self.histograms[(r["point"], 0)] = hist_array(r["input_grad"]["hist"])
            self.histograms[(r["point"], r["depth"] + 1)] = hist_array(r["output"]["hist"])

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def to_pandas(self):
        """The rows as a pandas DataFrame (imports pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.columns))

    def to_json(self):
        return json.dumps({"results": self.rows, "points": self.points}, indent=1)

    def __repr__(self):
        return f"SweepResult({len(self.points)} points, {len(self.rows)} rows)"
