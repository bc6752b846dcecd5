"""A sweep's directory: manifest, one file per finished point, tidy tables.

    DIR/manifest.json        the grid, seed, samples, dtype, block size, stream
    DIR/points/00012.json    point 12: its per-layer statistics and histograms
    DIR/results.csv|.json    the tidy table (one row per point and layer),
                             rebuilt from points/ (appended to while running)
    DIR/points.csv           per-point statistics of df/dx and the output

A point file is written to a temporary name, fsync'ed and renamed, so after
Ctrl-C or ``kill -9`` a point is either complete or absent: ``--resume``
loses at most the point in flight.  The manifest must match on resume, so a
directory never mixes two different sweeps.
"""
import csv
import io
import json
import os

from .errors import ManifestMismatch

__all__ = ["Store", "atomic_write", "ManifestMismatch"]

FORMAT = "gradkern-sweep/1"


def atomic_write(path, text):
    """Write ``text`` to ``path`` via temp file + fsync + rename (+ dir fsync)."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass


def _csv_text(rows, columns):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


class Store:
    """The directory of one sweep."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.points_dir = os.path.join(self.path, "points")

    @property
    def manifest_path(self):
        return os.path.join(self.path, "manifest.json")

    def read_manifest(self):
        try:
            with open(self.manifest_path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def open(self, manifest, resume):
        """Create the directory, or check it for ``resume``; return the set of
        finished point indices."""
        manifest = {"format": FORMAT, **manifest}
        old = self.read_manifest()
        if old is not None:
            if not resume:
                raise ValueError(f"{self.path} already holds a sweep; pass --resume "
                                 "(resume=True) to continue it, or choose another directory")
            if old != json.loads(json.dumps(manifest)):
                diff = sorted(k for k in set(old) | set(manifest)
                              if old.get(k) != json.loads(json.dumps(manifest.get(k))))
                raise ManifestMismatch(
                    f"{self.path} holds a different sweep (differs in: {', '.join(diff)}); "
                    "resume it with the same arguments, or choose another directory")
        os.makedirs(self.points_dir, exist_ok=True)
        if old is None:
            atomic_write(self.manifest_path, json.dumps(manifest, indent=1))
        return set(self.done())

    def done(self):
        """Indices of the points with a complete file."""
        out = []
        if os.path.isdir(self.points_dir):
            for name in os.listdir(self.points_dir):
                if name.endswith(".json") and not name.startswith("."):
                    out.append(int(name[:-5]))
        return sorted(out)

    def point_path(self, index):
        return os.path.join(self.points_dir, f"{index:05d}.json")

    def write_point(self, record):
        atomic_write(self.point_path(record["point"]), json.dumps(record))

    def read_point(self, index):
        with open(self.point_path(index), encoding="utf-8") as f:
            return json.load(f)

    def records(self):
        return [self.read_point(i) for i in self.done()]

    def append_rows(self, rows, columns):
        """Append rows to results.csv as points finish (flushed and fsync'ed);
        ``write_tables`` rewrites it whole from points/ at the start and end."""
        path = os.path.join(self.path, "results.csv")
        new = not os.path.exists(path)
        with open(path, "a", encoding="utf-8") as f:
            text = _csv_text(rows, columns)
            f.write(text if new else text.split("\n", 1)[1])
            f.flush()
            os.fsync(f.fileno())

    def write_tables(self, table):
        """results.csv, results.json and points.csv from a SweepResult."""
        atomic_write(os.path.join(self.path, "results.csv"), _csv_text(table.rows, table.columns))
        atomic_write(os.path.join(self.path, "points.csv"),
                     _csv_text(table.points, table.point_columns))
        atomic_write(os.path.join(self.path, "results.json"),
                     json.dumps({"results": table.rows, "points": table.points}, indent=1))
