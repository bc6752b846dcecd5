"""A sweep's results as a tidy table, and the record of one finished point.

``points/NNNNN.json`` holds a :func:`point_record`; :class:`SweepResult` turns
records into rows (one per point and layer), per-point rows and histograms.
"""
import json
import math

import numpy as np

from .stats import HIST_BINS, HIST_LO, HIST_WIDTH

__all__ = ["SweepResult", "point_record", "hist_array", "ROW_COLUMNS", "POINT_COLUMNS"]

ROW_COLUMNS = ("point", "activation", "depth", "dist", "weight", "layer", "samples", "seed",
               "dtype", "mean_abs_grad", "mean_grad", "rms_grad", "min_grad", "max_grad",
               "zero_fraction", "nan_fraction", "mean_log10_abs_grad")
_QUANTITIES = (("input_grad", "df/dx"), ("output", "f"))
_STAT_KEYS = ("mean_abs", "mean", "rms", "min", "max", "zero_fraction", "nan_fraction",
              "mean_log10_abs")
POINT_COLUMNS = ("point", "activation", "depth", "dist", "weight", "samples", "seed", "dtype",
                 "seconds", "backend") + tuple(
    f"{q}_{s}" for q, _ in _QUANTITIES for s in _STAT_KEYS)


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


def point_record(point, stats, samples, seed, dtype, seconds, backend):
    """The JSON-able record of a finished point (what points/NNNNN.json holds)."""
    L = point.depth
    layers = []
    for k in range(L):
        s = stats[k]
        layers.append({"layer": k + 1, **{key: s[key] for key in _STAT_KEYS},
                       "hist": _hist_json(s["hist"])})
    extra = {q: {**{key: stats[L + j][key] for key in _STAT_KEYS},
                 "hist": _hist_json(stats[L + j]["hist"])}
             for j, (q, _) in enumerate(_QUANTITIES)}
    return {**point.describe(), "samples": samples, "seed": seed, "dtype": str(dtype),
            "seconds": seconds, "backend": backend, "layers": layers, **extra}


class SweepResult:
    """The tidy table of a sweep.

    ``rows``: one dict per grid point and layer (columns :data:`ROW_COLUMNS`,
    statistics of df/dw_layer); ``points``: one dict per point with the
    statistics of df/dx (``input_grad_*``) and of the output (``output_*``);
    ``histograms[(point, layer)]``: counts of log10|df/dw_layer| on
    ``hist_edges`` (layer 0 = df/dx, L+1 = output).  Non-finite statistics
    (no valid sample) are None.
    """

    columns = ROW_COLUMNS
    point_columns = POINT_COLUMNS
    #: inner bin edges of log10|g|; bin 0 is below the first, the last bin above the last
    hist_edges = HIST_LO + HIST_WIDTH * np.arange(HIST_BINS - 1)

    def __init__(self, records):
        self.records = sorted(records, key=lambda r: r["point"])
        self.rows, self.points, self.histograms = [], [], {}
        for r in self.records:
            base = {k: r[k] for k in ("point", "activation", "depth", "dist", "weight")}
            common = {"samples": r["samples"], "seed": r["seed"], "dtype": r["dtype"]}
            for lay in r["layers"]:
                row = {**base, "layer": lay["layer"], **common}
                for col, key in zip(ROW_COLUMNS[9:], _STAT_KEYS):
                    row[col] = _finite_or_none(lay[key])
                self.rows.append(row)
                self.histograms[(r["point"], lay["layer"])] = hist_array(lay["hist"])
            prow = {**base, **common, "seconds": r["seconds"], "backend": r["backend"]}
            for q, _ in _QUANTITIES:
                for key in _STAT_KEYS:
                    prow[f"{q}_{key}"] = _finite_or_none(r[q][key])
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
