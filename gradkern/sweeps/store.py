"""A sweep's directory: manifest, one file per finished point, tidy tables.

    DIR/manifest.json        the grid, seed, samples, dtype, block size, stream
    DIR/points/00012.json    point 12: its per-layer statistics and histograms,
                             the stream and a sha256 of the rest
    DIR/results.csv|.json    the tidy table (one row per point and layer),
                             rebuilt from points/ (appended to while running)
    DIR/results.parquet      the same rows, typed, with the manifest and a
                             sha256 of its content in its metadata (written
                             with the CSV where pandas and pyarrow are installed)
    DIR/points.csv           per-point statistics of df/dx and the output

A point file is written to a temporary name, fsync'ed and renamed, so after
Ctrl-C or ``kill -9`` a point is either complete or absent: ``--resume``
loses at most the point in flight.  The manifest must match on resume, so a
directory never mixes two different sweeps.

Nothing in a directory is trusted: on resume and on load every file in
``points/`` is checked against the manifest (its name, index, grid point,
stream, seed, N, dtype) and against its own checksum.  A damaged point is
named in a :class:`~gradkern.errors.SweepDirectoryWarning` and recomputed
(resume) or left out (load); a file that is not one of the grid's points is
named and left alone.  gradkern writes only into a new or empty directory, or
into one holding its own manifest, and only under its own file names there;
its temporary files are removed on every failure path, and those a killed
process left behind are removed on resume.

``results.parquet`` never disagrees with ``results.csv``: it is removed
before the CSV changes (a row appended, the table rewritten) and written
again only after the CSV, from the same table; so a sweep killed at any
moment leaves either no Parquet or one holding exactly the CSV's rows.  It
is read back only after its sha256 (over the manifest and the rows)
matches: a damaged one is refused, never served.
"""
import csv
import hashlib
import io
import json
import os
import re
import warnings

from ..errors import ManifestMismatch, SweepDirectoryError, SweepDirectoryWarning
from .table import (BIAS_COLUMNS, POINT_COLUMNS, ROW_COLUMNS, SweepResult, parse_cell,
                    records_of_frame)

__all__ = ["Store", "atomic_write", "is_sweep_dir", "ManifestMismatch", "load",
           "read_parquet", "read_csv"]

#: the directory layout; unchanged by the checksum, which is a new field of
#: the point files: a point file without one (an older gradkern's) is treated
#: as unverifiable and recomputed on resume, so an older directory still resumes
FORMAT = "gradkern-sweep/1"
MANIFEST = "manifest.json"
RESULTS_CSV, RESULTS_PARQUET, POINTS_CSV = "results.csv", "results.parquet", "points.csv"
#: the Parquet file's own metadata (``attrs["gradkern"]``): this format, the
#: per-point table and the sha256 of manifest, rows and points
TABLE_FORMAT = "gradkern-table/1"
#: atomic_write's temporary names: ``.<name>.<pid>.tmp`` next to ``<name>``
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.\d+\.tmp")
#: the names atomic_write gives gradkern's own files in a sweep directory
_OWN_NAMES = re.compile(r"manifest\.json|results\.csv|results\.json|results\.parquet"
                        r"|points\.csv|\d{5,}\.json|[\w.+-]+\.png")
_POINT_NAME = re.compile(r"\d{5,}\.json")
#: fields the store adds to a point record in its file, checked and dropped on read
STREAM_KEY, CHECKSUM_KEY = "stream", "sha256"
#: a record's fields that must equal its grid point in the manifest, and the run's
_GRID_KEYS = ("point", "activation", "params", "depth", "dist", "weight", "bias")
_RUN_KEYS = ("seed", "samples", "dtype")
_MISSING = object()
#: file names listed in one warning before "... and N more"
_LIST_MAX = 10


def _is_own_temp(name):
    m = _TEMP_NAME.fullmatch(name)
    return m is not None and _OWN_NAMES.fullmatch(m.group("name")) is not None


def _quietly(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


def _named(exc, path):
    """``exc`` (an OSError) as one naming ``path``, the file the caller wrote:
    ``[Errno 28] No space left on device: 'DIR/points/00003.json'``."""
    if exc.errno is None:
        return OSError(f"{exc}: {os.fspath(path)!r}")
    return OSError(exc.errno, exc.strerror or str(exc), os.fspath(path))


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(d):
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass


def atomic_write(path, data):
    """Write ``data`` (str, as UTF-8, or bytes) to ``path``: temp file, fsync,
    rename, directory fsync.  On any failure the temp file is removed and
    ``path`` is untouched; an OSError names ``path``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    d, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(d, f".{name}.{os.getpid()}.tmp")
    fd = None
    try:
        # raw os.write: a buffered file would flush again on close after a
        # failed write and chain a second ENOSPC onto the first
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        _write_all(fd, data)
        os.fsync(fd)
        closing, fd = fd, None
        os.close(closing)  # close can report a deferred write error (NFS)
        os.replace(tmp, path)
    except BaseException as exc:
        if fd is not None:
            _quietly(os.close, fd)
        _quietly(os.unlink, tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from exc
        raise
    _fsync_dir(d)


def _csv_text(rows, columns):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _canonical(value):
    """``value`` as it reads back from its JSON file (floats round-trip by repr)."""
    return json.loads(json.dumps(value))


def checksum(record):
    """sha256 of a point record's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _listing(items):
    shown = ", ".join(items[:_LIST_MAX])
    more = len(items) - _LIST_MAX
    return shown + (f", and {more} more" if more > 0 else "")


def read_manifest(path):
    """The manifest of the sweep directory ``path``; None where there is no
    ``manifest.json``; SweepDirectoryError where it is not gradkern's."""
    mpath = os.path.join(os.fspath(path), MANIFEST)
    try:
        with open(mpath, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        doc = exc
    if not (isinstance(doc, dict) and str(doc.get("format", "")).startswith("gradkern-sweep/")):
        raise SweepDirectoryError(
            f"{mpath} is not a gradkern sweep manifest, so {os.fspath(path)} is not a sweep "
            "directory (gradkern writes a new sweep only into an empty or new directory)")
    return doc


def is_sweep_dir(path):
    """Whether ``path`` is a directory holding a gradkern sweep manifest."""
    try:
        return read_manifest(path) is not None
    except SweepDirectoryError:
        return False


class Store:
    """The directory of one sweep."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.points_dir = os.path.join(self.path, "points")

    @property
    def manifest_path(self):
        return os.path.join(self.path, MANIFEST)

    def read_manifest(self):
        return read_manifest(self.path)

    # ------------------------------------------------------------- opening
    def open(self, manifest, resume):
        """Create the directory (with its parents), or check it for
        ``resume``; return ``{index: record}`` of the verified finished points.

        An existing directory must be empty or hold a gradkern sweep; a sweep
        is continued only with ``resume`` and the same manifest.  Damaged
        point files are named in a warning (and recomputed by the caller),
        foreign files named and left alone.
        """
        self.manifest = _canonical({"format": FORMAT, **manifest})
        old = self._existing_manifest()
        if old is None:
            # the manifest first: a directory holding one is a sweep directory
            atomic_write(self.manifest_path, json.dumps(self.manifest, indent=1))
            os.makedirs(self.points_dir, exist_ok=True)
            return {}
        if not resume:
            raise SweepDirectoryError(
                f"{self.path} already holds a sweep; pass --resume (resume=True) to "
                "continue it, or choose another directory")
        if old != self.manifest:
            diff = sorted(k for k in set(old) | set(self.manifest)
                          if old.get(k) != self.manifest.get(k))
            raise ManifestMismatch(
                f"{self.path} holds a different sweep (differs in: {', '.join(diff)}); "
                "resume it with the same arguments, or choose another directory")
        os.makedirs(self.points_dir, exist_ok=True)
        self._remove_own_temps(self.path)
        self._remove_own_temps(self.points_dir)
        return self.verified_points("recomputed")

    def _existing_manifest(self):
        """The manifest already in the directory, or None for a new or empty
        one (created here); refuse a file and a non-empty foreign directory."""
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise SweepDirectoryError(
                f"{self.path} exists and is not a directory; out= (--out) names the "
                "directory of a sweep: choose an empty or new directory")
        if not os.path.isdir(self.path):
            try:
                os.makedirs(self.path)
            except OSError as exc:
                raise _named(exc, self.path) from exc
            return None
        old = self.read_manifest()
        if old is None:
            foreign = sorted(n for n in os.listdir(self.path) if not _is_own_temp(n))
            if foreign:
                raise SweepDirectoryError(
                    f"{self.path} is not empty and holds no gradkern sweep (it has "
                    f"{_listing(foreign)}); gradkern does not write into it: choose an empty "
                    "or new directory")
            self._remove_own_temps(self.path)
        return old

    def _remove_own_temps(self, d):
        """Temp files of atomic_write left by a killed process (``kill -9``
        runs no cleanup); gradkern's names only, nothing else is touched."""
        for name in os.listdir(d):
            if _is_own_temp(name):
                _quietly(os.unlink, os.path.join(d, name))

    # ------------------------------------------------------------- points
    def point_path(self, index):
        return os.path.join(self.points_dir, f"{index:05d}.json")

    def write_point(self, record):
        """Write a finished point's record with the stream and its checksum."""
        rec = _canonical({**record, STREAM_KEY: self.manifest["stream"]})
        rec[CHECKSUM_KEY] = checksum(rec)
        atomic_write(self.point_path(record["point"]), json.dumps(rec))

    def verified_points(self, fate):
        """``{index: record}`` of the point files that pass every check; the
        others are named in one SweepDirectoryWarning each for damaged ones
        (``fate``: what happens to them) and for foreign files."""
        records, damaged, foreign = {}, [], []
        names = sorted(os.listdir(self.points_dir)) if os.path.isdir(self.points_dir) else []
        n_grid = len(self.manifest["grid"])
        for name in names:
            if _is_own_temp(name):
                continue
            path = os.path.join(self.points_dir, name)
            index = int(name[:-5]) if _POINT_NAME.fullmatch(name) else None
            if index is None or os.path.basename(self.point_path(index)) != name \
                    or not os.path.isfile(path):
                foreign.append(name)
            elif index >= n_grid:
                foreign.append(f"{name} (the grid has points 0 to {n_grid - 1})")
            else:
                rec, why = self._check_point(path, index)
                if why is None:
                    records[index] = rec
                else:
                    damaged.append(f"{name} ({why})")
        if damaged:
            warnings.warn(SweepDirectoryWarning(
                f"{self.points_dir}: {len(damaged)} damaged point file(s), {fate}: "
                f"{_listing(damaged)}"), stacklevel=4)
        if foreign:
            warnings.warn(SweepDirectoryWarning(
                f"{self.points_dir}: {len(foreign)} file(s) that are not this sweep's points, "
                f"ignored and left in place: {_listing(foreign)}"), stacklevel=4)
        return records

    def _check_point(self, path, index):
        """(record, None) for a good point file, (None, why) for a damaged one."""
        try:
            with open(path, "rb") as f:
                rec = json.loads(f.read())
        except OSError as exc:
            return None, f"unreadable: {exc.strerror or exc}"
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            return None, f"not valid JSON: {exc}"
        if not isinstance(rec, dict):
            return None, "not a point record"
        if CHECKSUM_KEY not in rec:
            return None, "no checksum: not written by this version of gradkern"
        if rec.pop(CHECKSUM_KEY) != checksum(rec):
            return None, "checksum mismatch: its content was changed"
        expect = {**self.manifest["grid"][index], STREAM_KEY: self.manifest[STREAM_KEY],
                  **{k: self.manifest[k] for k in _RUN_KEYS}}
        bad = [k for k in (*_GRID_KEYS, STREAM_KEY, *_RUN_KEYS)
               if rec.get(k, _MISSING) != expect.get(k, _MISSING)]
        if bad:
            return None, f"differs from the manifest's point {index} in: {', '.join(bad)}"
        del rec[STREAM_KEY]
        return rec, None

    def load_points(self):
        """The verified finished points of an existing sweep directory (for
        ``load_sweep``); damaged ones are named in a warning and left out."""
        manifest = self.read_manifest()
        if manifest is None:
            raise SweepDirectoryError(f"{self.path} holds no sweep (no {MANIFEST})")
        self.manifest = manifest
        return self.verified_points("left out")

    # ------------------------------------------------------------- tables
    def _remove_parquet(self):
        """Remove results.parquet before the CSV changes (durably: the
        directory is fsync'ed), so it can never hold other rows than the CSV."""
        path = os.path.join(self.path, RESULTS_PARQUET)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _named(exc, path) from exc
        _fsync_dir(self.path)

    def append_rows(self, rows, columns):
        """Append rows to results.csv as points finish (fsync'ed); on failure
        it is cut back to its previous size, so it holds whole rows only.
        ``write_tables`` rewrites it whole from points/ at the start and end.
        results.parquet goes first: it would no longer hold the CSV's rows."""
        self._remove_parquet()
        path = os.path.join(self.path, RESULTS_CSV)
        text = _csv_text(rows, columns)
        fd = size = None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            size = os.fstat(fd).st_size
            _write_all(fd, (text if size == 0 else text.split("\n", 1)[1]).encode("utf-8"))
            os.fsync(fd)
            closing, fd = fd, None
            os.close(closing)
        except BaseException as exc:
            if fd is not None:
                _quietly(os.close, fd)
            if size is not None:
                _quietly(os.truncate, path, size)
            if isinstance(exc, OSError):
                raise _named(exc, path) from exc
            raise

    def write_tables(self, table):
        """results.csv, results.json, points.csv and (with pandas and pyarrow)
        results.parquet from a SweepResult, which gets the manifest."""
        table.manifest = self.manifest
        self._remove_parquet()
        atomic_write(os.path.join(self.path, RESULTS_CSV), _csv_text(table.rows, table.columns))
        atomic_write(os.path.join(self.path, POINTS_CSV),
                     _csv_text(table.points, table.point_columns))
        atomic_write(os.path.join(self.path, "results.json"),
                     json.dumps({"results": table.rows, "points": table.points}, indent=1))
        data = parquet_bytes(table)
        if data is not None:
            atomic_write(os.path.join(self.path, RESULTS_PARQUET), data)

    def load_tables(self):
        """The SweepResult of a directory without points/ (its tables were
        copied without them): results.parquet, else results.csv (with
        points.csv); a damaged or foreign Parquet is named in a warning and
        the CSV read instead.  Needs ``self.manifest``."""
        points_path = os.path.join(self.path, POINTS_CSV)
        points = None
        if os.path.exists(points_path):
            points = _read_csv_rows(points_path, _CSV_POINTS)
            _check_rows(points_path, points, self.manifest)
        rows = self._parquet_rows()
        if rows is None:
            csv_path = os.path.join(self.path, RESULTS_CSV)
            if not os.path.exists(csv_path):
                return SweepResult([], self.manifest)
            rows = _read_csv_rows(csv_path, _CSV_ROWS)
            _check_rows(csv_path, rows, self.manifest)
        return SweepResult.from_table(rows, points, self.manifest)

    def _parquet_rows(self):
        """The rows of results.parquet if it is this sweep's and undamaged;
        else None (a damaged or foreign one named in a warning)."""
        parquet = os.path.join(self.path, RESULTS_PARQUET)
        if not os.path.exists(parquet):
            return None
        try:
            res = read_parquet(parquet)
        except ImportError:  # no pandas or pyarrow: the CSV holds the same rows
            return None
        except SweepDirectoryError as exc:
            warnings.warn(SweepDirectoryWarning(f"{exc}; read {RESULTS_CSV} instead"),
                          stacklevel=4)
            return None
        if res.manifest != self.manifest:
            warnings.warn(SweepDirectoryWarning(
                f"{parquet} is not this directory's table: its manifest differs from "
                f"{MANIFEST}; read {RESULTS_CSV} instead"), stacklevel=4)
            return None
        return res.rows


# ----------------------------------------------------------------- Parquet and CSV
def table_digest(manifest, rows):
    """sha256 of a table's canonical JSON: its manifest and its rows."""
    text = json.dumps({"manifest": manifest, "rows": rows}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parquet_bytes(table):
    """results.parquet's bytes for a SweepResult; None where pandas or pyarrow
    is missing (they come with the ``sweep`` extra).

    One row per point and layer, the typed columns of ``to_pandas()``; in
    the file's pandas metadata (``DataFrame.attrs``, read back by
    ``pandas.read_parquet``): ``manifest``, and ``gradkern``: the format and
    the sha256 of manifest and rows.  Page checksums are written too, and no
    column statistics (nothing would check them).  The per-point table stays
    in points.csv: in the metadata it would be stored twice (pandas' and
    Arrow's copy of the schema) and make the file ~10x its data (3.3 MB
    against 0.3 MB for 690 points at depths 1-30)."""
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        return None
    rows, manifest = _canonical(table.rows), _canonical(table.manifest)
    df = table.to_pandas()
    df.attrs = {"manifest": manifest,
                "gradkern": {"format": TABLE_FORMAT, "sha256": table_digest(manifest, rows)}}
    buf = io.BytesIO()
    df.to_parquet(buf, engine="pyarrow", index=False, write_page_checksum=True,
                  write_statistics=False)
    return buf.getvalue()


def _damaged(path, why):
    return SweepDirectoryError(f"{os.fspath(path)} is damaged ({why}); gradkern does not read it")


def read_parquet(path):
    """The SweepResult of a ``results.parquet`` (rows and manifest; points
    from the rows, no histograms); SweepDirectoryError where the file is not
    gradkern's table or its content does not match its sha256."""
    import pandas as pd
    import pyarrow as pa

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise _named(exc, path) from exc
    try:
        # one read of the bytes: the frame and its checksum come from the same file
        df = pd.read_parquet(io.BytesIO(data), engine="pyarrow",
                             page_checksum_verification=True)
    except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as exc:
        raise _damaged(path, f"not a readable Parquet file: {exc}") from None
    meta, manifest = df.attrs.get("gradkern"), df.attrs.get("manifest")
    if not (isinstance(meta, dict) and meta.get("format") == TABLE_FORMAT
            and isinstance(manifest, dict)):
        raise _damaged(path, f"no {TABLE_FORMAT} metadata: not a table gradkern wrote")
    if tuple(df.columns) not in _TABLE_COLUMNS:
        raise _damaged(path, f"unexpected columns {', '.join(map(str, df.columns))}")
    try:
        rows = records_of_frame(df)
    except (TypeError, ValueError) as exc:
        raise _damaged(path, f"a value of the wrong type: {exc}") from None
    if table_digest(manifest, rows) != meta.get("sha256"):
        raise _damaged(path, "checksum mismatch: its content was changed")
    return SweepResult.from_table(rows, None, manifest)


#: the columns of results.csv / .parquet: without biases, and with them
_TABLE_COLUMNS = (ROW_COLUMNS, ROW_COLUMNS[:5] + ("bias",) + ROW_COLUMNS[5:] + BIAS_COLUMNS)
#: a CSV's (columns it must have, columns it may have): a statistic an older
#: gradkern did not write (points.csv before growth_rate) reads as None
_CSV_ROWS = (ROW_COLUMNS[:9], _TABLE_COLUMNS[1])
_CSV_POINTS = (POINT_COLUMNS[:8], POINT_COLUMNS[:5] + ("bias",) + POINT_COLUMNS[5:])


def _read_csv_rows(path, allowed):
    """The typed rows of a table CSV; SweepDirectoryError naming the file and
    line of a row that does not parse."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = tuple(next(reader, ()))
            unknown = [c for c in header if c not in allowed[1]]
            missing = [c for c in allowed[0] if c not in header]
            if unknown or missing or not header:
                raise _damaged(path, "not a gradkern table: " + "; ".join(
                    f"{what} columns {', '.join(cs)}" for what, cs in
                    (("unknown", unknown), ("no", missing)) if cs) or "no header")
            rows = []
            for line, cells in enumerate(reader, 2):
                if len(cells) != len(header):
                    raise _damaged(path, f"line {line} has {len(cells)} fields, not "
                                   f"{len(header)}")
                try:
                    rows.append({c: parse_cell(c, t) for c, t in zip(header, cells)})
                except ValueError as exc:
                    raise _damaged(path, f"line {line}: {exc}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _damaged(path, f"unreadable: {exc}") from None
    return rows


def _check_rows(path, rows, manifest):
    """Each row's grid point and run as the manifest says (SweepDirectoryError)."""
    grid = manifest.get("grid", [])
    for r in rows:
        i = r["point"]
        expect = {**(grid[i] if 0 <= i < len(grid) else {}),
                  **{k: manifest.get(k) for k in ("seed", "samples", "dtype")}}
        bad = [k for k in ("activation", "depth", "dist", "weight", "bias", "seed", "samples",
                           "dtype") if k in expect and r.get(k, _MISSING) != expect[k]]
        if i >= len(grid) or bad:
            raise _damaged(path, f"its rows of point {i} differ from the manifest in: "
                           f"{', '.join(bad) or 'point'}")


def read_csv(path):
    """The SweepResult of a ``results.csv`` alone: typed rows, points from
    the rows, no histograms, no manifest."""
    return SweepResult.from_table(_read_csv_rows(os.fspath(path), _CSV_ROWS))


def load(path):
    """The SweepResult of a sweep directory, or of a table file.

    Parameters
    ----------
    path : path
        A sweep directory: its verified ``points/`` (with histograms; a
        damaged point file is named in a SweepDirectoryWarning and left out,
        and so is a foreign file in ``points/``); a directory of tables only
        (copied without ``points/``): the rows of ``results.parquet``, else
        of ``results.csv``, and ``points.csv``.  Or a ``.parquet`` or
        ``.csv`` table file itself (points from its rows).

    Returns
    -------
    SweepResult
        With ``.manifest``; from tables alone without histograms or records.

    Raises
    ------
    SweepDirectoryError
        ``path`` holds no sweep, or the table file asked for is damaged (its
        checksum, its columns, or a row that does not parse).
    """
    p = os.fspath(path)
    if os.path.isfile(p):
        if p.endswith(".parquet"):
            return read_parquet(p)
        if p.endswith(".csv"):
            return read_csv(p)
        raise SweepDirectoryError(f"{p} is neither a sweep directory nor a .parquet or .csv "
                                  "table")
    store = Store(p)
    records = store.load_points()
    if os.path.isdir(store.points_dir):
        return SweepResult(records.values(), store.manifest)
    return store.load_tables()
