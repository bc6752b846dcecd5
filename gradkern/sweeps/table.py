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
           "POINT_COLUMNS", "BIAS_COLUMNS", "parse_cell"]

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
#: the typed columns of the tables (everything else is a float statistic, None
#: / NaN where no sample was valid): labels are categoricals in a DataFrame and
#: dictionary-encoded in Parquet (a few distinct values over many rows); seed
#: is uint64 (0 <= seed < 2**64)
CATEGORY_COLUMNS = ("activation", "dist", "dtype")
INT_COLUMNS = {"point": "int64", "depth": "int64", "layer": "int64", "samples": "int64",
               "seed": "uint64"}
#: weight and bias settings: a number, or a distribution such as "normal:0,1.5"
SETTING_COLUMNS = ("weight", "bias")
_TEXT_COLUMNS = CATEGORY_COLUMNS + ("backend",)
#: the grid's axes, in the order of the xarray dimensions (bias only with biases)
_GRID_DIMS = ("activation", "depth", "dist", "weight", "bias")


def _finite_or_none(v):
    return v if isinstance(v, float) and math.isfinite(v) else (None if isinstance(v, float)
                                                                 else v)


def parse_setting(text):
    """A weight or bias setting read back from text: a distribution stays a
    str (it has a colon: ``"normal:0,1.5"``), a number becomes a float;
    empty is None (no biases)."""
    if text is None or text == "":
        return None
    return text if ":" in text else float(text)


def parse_cell(column, text):
    """A table cell read back from its CSV text, typed as the table holds it."""
    if column in INT_COLUMNS:
        return int(text)
    if column in SETTING_COLUMNS:
        return parse_setting(text)
    if column in _TEXT_COLUMNS:
        return text
    return None if text == "" else float(text)


def _setting_values(values):
    """A weight/bias column's values: floats where every setting is a number
    (None as NaN), else text (a number as its repr, which parse_setting reads
    back exactly), so one column has one type."""
    if all(v is None or isinstance(v, float) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return [v if isinstance(v, str) else repr(v) for v in values]


def _categorical(values):
    """A pandas Categorical keeping the order of first appearance (grid order)."""
    import pandas as pd

    return pd.Categorical(values, categories=list(dict.fromkeys(values)))


def typed_frame(records, columns):
    """A DataFrame of ``records`` (dicts) with the typed columns of the tables."""
    import pandas as pd

    data = {}
    for c in columns:
        values = [r.get(c) for r in records]
        if c in CATEGORY_COLUMNS:
            data[c] = _categorical(values)
        elif c in INT_COLUMNS:
            data[c] = np.array(values, dtype=INT_COLUMNS[c])
        elif c in SETTING_COLUMNS:
            data[c] = _setting_values(values)
        elif c == "backend":
            data[c] = values
        else:
            data[c] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return pd.DataFrame(data, columns=list(columns))


def records_of_frame(df):
    """The rows of a typed DataFrame as plain dicts, exactly as the table held
    them (NaN statistics as None, settings as numbers or distributions)."""
    out = []
    for rec in df.to_dict("records"):
        row = {}
        for c, v in rec.items():
            if c in INT_COLUMNS:
                row[c] = int(v)
            elif c in SETTING_COLUMNS:
                row[c] = None if isinstance(v, float) and math.isnan(v) else (
                    v if isinstance(v, float) else parse_setting(str(v)))
            elif c in _TEXT_COLUMNS:
                row[c] = str(v)
            else:
                row[c] = None if v is None or math.isnan(v) else float(v)
        out.append(row)
    return out


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


def _points_of_rows(rows, columns):
    """One per-point dict per point of ``rows``: its grid fields and growth
    rate; the statistics of df/dx and f are unknown (None)."""
    by_point = {}
    for r in rows:
        by_point.setdefault(r["point"], []).append(r)
    points = []
    for index, rs in sorted(by_point.items()):
        p = dict.fromkeys(columns)
        p.update({k: rs[0][k] for k in columns if k in rs[0]})
        p["growth_rate"], p["growth_rate_se"] = growth_rate(
            [r["mean_log10_abs_grad"] for r in sorted(rs, key=lambda r: r["layer"])])
        points.append(p)
    return points


def _rates(point):
    return {} if point is None else {k: point[k] for k in ("growth_rate", "growth_rate_se")}


def _unique_index(df, dims):
    """``df`` indexed by ``dims``; ValueError naming a duplicated grid point."""
    out = df.set_index(dims)
    dup = out.index.duplicated()
    if dup.any():
        raise ValueError(f"two rows of the table share {dict(zip(dims, out.index[dup][0]))}: "
                         "an xarray needs one row per grid point (and layer)")
    return out


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

    #: the manifest of the sweep directory (or Parquet file) the table came
    #: from or was written to (``manifest.json``); None for a sweep without ``out``
    manifest = None

    def __init__(self, records, manifest=None):
        self.manifest = manifest
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

    @classmethod
    def from_table(cls, rows, points=None, manifest=None):
        """A SweepResult from table rows alone (``results.parquet`` or
        ``results.csv``, without ``points/``): no records and no histograms.
        ``points`` (``points.csv``) where known, else one per point from its
        rows, with its growth rate and no df/dx or output statistics."""
        self = cls([], manifest)
        self.rows = sorted(rows, key=lambda r: (r["point"], r["layer"]))
        if any("bias" in r for r in self.rows):
            self.columns = ROW_COLUMNS[:5] + ("bias",) + ROW_COLUMNS[5:] + BIAS_COLUMNS
            self.point_columns = POINT_COLUMNS[:5] + ("bias",) + POINT_COLUMNS[5:]
        derived = _points_of_rows(self.rows, self.point_columns)
        if points is None:
            self.points = derived
        else:  # a column an older points.csv lacks: None, growth rates from the rows
            rates = {p["point"]: p for p in derived}
            self.points = [{**dict.fromkeys(self.point_columns), **_rates(rates.get(p["point"])),
                            **p} for p in sorted(points, key=lambda p: p["point"])]
        return self

    def to_pandas(self):
        """The rows as a pandas DataFrame (imports pandas).

        Typed columns: ``activation``, ``dist``, ``dtype`` categorical (in
        grid order); ``point``, ``depth``, ``layer``, ``samples`` int64,
        ``seed`` uint64; ``weight`` (and ``bias``) float64 where every setting
        is a number, else str (``"normal:0,1.5"``, numbers as ``"1.0"``); the
        statistics float64, NaN where no sample was valid.  ``attrs["manifest"]``
        is the sweep's manifest where known (:attr:`manifest`).
        """
        df = typed_frame(self.rows, self.columns)
        if self.manifest is not None:
            df.attrs["manifest"] = self.manifest
        return df

    def to_xarray(self):
        """The table as an ``xarray.Dataset`` (imports xarray and pandas).

        Dimensions ``activation`` x ``depth`` x ``dist`` x ``weight`` (x
        ``bias``) x ``layer``; data variables the per-layer statistics
        (``mean_abs_grad`` ...; NaN for layers beyond a point's depth and for
        points not in the table), and the per-point ones without ``layer``
        (``input_grad_*``, ``output_*``, ``growth_rate``, ``growth_rate_se``).
        Coordinates are typed as in :meth:`to_pandas`.  ``attrs``: ``samples``,
        ``seed``, ``dtype`` and, where known, ``manifest`` (its JSON text, so
        the Dataset can be written to netCDF).
        """
        import xarray as xr

        dims = [d for d in _GRID_DIMS if d in self.columns]
        rows = self.to_pandas()
        stats = [c for c in self.columns if c not in (*dims, "layer", "point", "samples",
                                                      "seed", "dtype")]
        per_layer = xr.Dataset.from_dataframe(_unique_index(rows, dims + ["layer"])[stats])
        pstats = [c for c in self.point_columns
                  if c.startswith(("input_grad_", "output_", "growth_rate"))]
        points = typed_frame(self.points, dims + pstats)
        ds = xr.merge([per_layer, xr.Dataset.from_dataframe(_unique_index(points, dims))],
                      join="outer", compat="no_conflicts", combine_attrs="drop")
        for d in dims:  # plain str coordinates (grid order kept), which netCDF can write
            index = ds.indexes[d]
            if index.dtype.kind not in "iuf":
                ds = ds.assign_coords({d: np.array([str(v) for v in index], dtype=str)})
        for key in ("samples", "seed", "dtype"):
            values = {r[key] for r in self.rows}
            if len(values) == 1:
                ds.attrs[key] = values.pop()
        if self.manifest is not None:
            ds.attrs["manifest"] = json.dumps(self.manifest)
        return ds

    def to_json(self):
        return json.dumps({"results": self.rows, "points": self.points}, indent=1)

    def __repr__(self):
        return f"SweepResult({len(self.points)} points, {len(self.rows)} rows)"
