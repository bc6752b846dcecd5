"""The sweep directory in the field: a user's files are never overwritten,
temp files never outlive a failure (disk full by fault injection), and a
damaged directory is diagnosed: damaged points named and recomputed (resume)
or left out (load), foreign files named and left alone."""
import errno
import json
import os
import shutil

import numba
import numpy as np
import pytest

import gradkern as gk
from gradkern.sweeps import store as sweep_store
from gradkern.errors import SweepDirectoryError, SweepDirectoryWarning
from gradkern.sweeps.store import Store, atomic_write

#: 6 points: (Tanh, ReLU) x depths 1-3, two chunks each
KW = dict(activations="Tanh,ReLU", depths="1-3", samples=2 * 4096 + 5, seed=5, backend="cpu",
          chunk_blocks=2)


@pytest.fixture(scope="module")
def baseline():
    return gk.sweep(**KW)


def _same(a, b):
    assert a.rows == b.rows
    strip = [{k: v for k, v in p.items() if k != "seconds"} for p in a.points]
    assert strip == [{k: v for k, v in p.items() if k != "seconds"} for p in b.points]
    assert a.histograms.keys() == b.histograms.keys()
    for k in a.histograms:
        assert np.array_equal(a.histograms[k], b.histograms[k]), k


def _files(d):
    """{relative path: bytes} of every file under ``d``."""
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = f.read()
    return out


def _temps(d):
    return [p for p in _files(d) if p.endswith(".tmp")]


# --------------------------------------------------------------------------- no overwrite
def test_non_empty_foreign_directory_is_refused(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "results.csv").write_text("my,own\n1,2\n")
    (d / "points.csv").write_text("x\n")
    before = _files(d)
    n_threads = numba.get_num_threads()
    for resume in (False, True):
        with pytest.raises(SweepDirectoryError, match="empty or new directory") as e:
            gk.sweep(out=d, resume=resume, threads=1, **KW)
        assert str(d) in str(e.value) and "results.csv" in str(e.value)
    assert _files(d) == before
    assert numba.get_num_threads() == n_threads


def test_foreign_manifest_and_a_file_are_refused(tmp_path):
    d = tmp_path / "web"
    d.mkdir()
    (d / "manifest.json").write_text('{"name": "my web app"}')
    with pytest.raises(SweepDirectoryError, match="not a gradkern sweep manifest.*empty or new directory"):
        gk.sweep(out=d, **KW)
    assert _files(d) == {"manifest.json": b'{"name": "my web app"}'}
    f = tmp_path / "report.txt"
    f.write_text("keep me")
    with pytest.raises(SweepDirectoryError, match="not a directory") as e:
        gk.sweep(out=f, **KW)
    assert str(f) in str(e.value) and f.read_text() == "keep me"


def test_empty_and_new_directories_are_used(tmp_path, baseline):
    empty = tmp_path / "empty"
    empty.mkdir()
    _same(baseline, gk.sweep(out=empty, **KW))
    deep = tmp_path / "a" / "b" / "c"  # parents created, as mkdir -p
    _same(baseline, gk.sweep(out=deep, **KW))
    assert (deep / "manifest.json").is_file()
    with pytest.raises(SweepDirectoryError, match="already holds a sweep"):
        gk.sweep(out=deep, **KW)


def test_plots_never_replace_a_png_gradkern_did_not_write(tmp_path):
    pytest.importorskip("matplotlib")
    from gradkern.plots import plot_dir, png_software

    d = tmp_path / "sweep"
    gk.sweep("ReLU,Tanh", "1-2", samples=4096, backend="cpu", out=d)
    user = tmp_path / "figures"
    user.mkdir()
    theirs = bytes(_files(tmp_path / "sweep")["manifest.json"])  # any bytes of theirs
    (user / "heatmap.png").write_bytes(theirs)
    with pytest.raises(FileExistsError, match="not written by gradkern") as e:
        plot_dir(d, user)
    assert str(user / "heatmap.png") in str(e.value)
    assert _files(user) == {"heatmap.png": theirs}  # nothing written, not even layers.png
    (user / "heatmap.png").unlink()
    paths = plot_dir(d, user)
    assert sorted(os.path.basename(p) for p in paths) == ["heatmap.png", "layers.png"]
    assert png_software(user / "layers.png") == f"gradkern {gk.__version__}"
    assert plot_dir(d, user) == paths  # its own PNGs it replaces
    assert plot_dir(d) and png_software(d / "layers.png").startswith("gradkern ")
    assert not _temps(user) and not _temps(d)


# --------------------------------------------------------------------------- temp files
def _enospc(*args, **kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("call", ["write", "fsync", "replace"])
def test_atomic_write_cleans_up_on_disk_full(tmp_path, monkeypatch, call):
    target = tmp_path / "results.json"
    target.write_text("old")
    monkeypatch.setattr(sweep_store.os, call, _enospc)
    with pytest.raises(OSError) as e:
        atomic_write(target, "new" * 1000)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and str(target) in str(e.value)
    assert os.listdir(tmp_path) == ["results.json"] and target.read_text() == "old"


def test_sweep_on_a_full_disk_leaves_no_temp_and_resumes(tmp_path, monkeypatch, baseline):
    d = tmp_path / "s"
    calls = []
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up at the 6th fsync: inside a point file's write
        calls.append(fd)
        if len(calls) >= 6:
            _enospc()
        real_fsync(fd)

    monkeypatch.setattr(sweep_store.os, "fsync", fsync)
    with pytest.raises(OSError) as e:
        gk.sweep(out=d, **KW)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(d / "points" / "00001.json")
    assert not _temps(d)
    assert (d / "results.csv").read_text().count("\n") == 1 + 1  # header, point 0's row
    _same(baseline, gk.sweep(out=d, resume=True, **KW))


def test_append_rows_leaves_whole_rows_on_disk_full(tmp_path, monkeypatch):
    d = tmp_path / "s"
    gk.sweep("ReLU", 2, samples=4096, backend="cpu", out=d)
    csv = d / "results.csv"
    before = csv.read_bytes()
    real_write = os.write

    def write_half(fd, data):  # a partial row reaches the file, then the disk is full
        real_write(fd, bytes(data)[:len(data) // 2])
        _enospc()

    rows = gk.load_sweep(d).rows
    monkeypatch.setattr(sweep_store.os, "write", write_half)
    with pytest.raises(OSError) as e:
        Store(d).append_rows(rows, gk.SweepResult.columns)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and str(csv) in str(e.value)
    assert csv.read_bytes() == before


def test_resume_removes_stale_temp_files_of_its_own_only(tmp_path, baseline):
    d = tmp_path / "s"
    gk.sweep(out=d, **KW)
    stale = [d / ".manifest.json.4242.tmp", d / ".results.csv.17.tmp",
             d / "points" / ".00003.json.99999.tmp"]
    theirs = [d / ".notes.txt.12.tmp", d / "points" / ".cache"]
    for p in stale + theirs:
        p.write_text("x")
    with pytest.warns(SweepDirectoryWarning, match=r"\.cache"):  # foreign in points/
        _same(baseline, gk.sweep(out=d, resume=True, **KW))
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "x" for p in theirs)


def test_directory_holding_only_gradkern_temps_counts_as_empty(tmp_path, baseline):
    d = tmp_path / "s"
    d.mkdir()
    (d / ".manifest.json.4242.tmp").write_text("{")  # killed while writing the manifest
    _same(baseline, gk.sweep(out=d, **KW))
    assert not _temps(d)


# --------------------------------------------------------------------------- damage
def _damage(d):
    """Damage points 0-3 of the sweep in ``d`` and add foreign files; return
    the foreign files' contents."""
    pts = d / "points"
    text = {i: (pts / f"{i:05d}.json").read_text() for i in range(6)}
    (pts / "00000.json").write_text(text[0][:len(text[0]) // 2])       # truncated
    (pts / "00001.json").write_text("{}")                               # empty record
    rec = json.loads(text[2])
    rec["layers"][0]["mean_abs"] *= 1.5                                 # an edited number
    (pts / "00002.json").write_text(json.dumps(rec))
    (pts / "00003.json").write_text(text[4])                            # another point
    foreign = {"notes.json": '{"note": 1}', "abc.txt": "hello", "00099.json": text[5]}
    for name, t in foreign.items():
        (pts / name).write_text(t)
    return foreign


def _check_warnings(record, fate):
    msgs = [str(w.message) for w in record]
    damaged = [m for m in msgs if "damaged point file(s)" in m]
    foreign = [m for m in msgs if "not this sweep's points" in m]
    assert len(damaged) == 1 and len(foreign) == 1, msgs
    m = damaged[0]
    assert f"4 damaged point file(s), {fate}" in m
    assert "00000.json (not valid JSON: " in m
    assert "00001.json (no checksum" in m
    assert "00002.json (checksum mismatch" in m
    assert "00003.json (differs from the manifest's point 3 in: point, depth" in m
    for name in ("notes.json", "abc.txt", "00099.json (the grid has points 0 to 5)"):
        assert name in foreign[0]


def test_load_names_and_leaves_out_damaged_points(tmp_path, baseline):
    d = tmp_path / "s"
    gk.sweep(out=d, **KW)
    _damage(d)
    with pytest.warns(SweepDirectoryWarning) as record:
        loaded = gk.load_sweep(d)
    _check_warnings(record, "left out")
    assert [p["point"] for p in loaded.points] == [4, 5]
    assert loaded.rows == [r for r in baseline.rows if r["point"] >= 4]


def test_resume_recomputes_damaged_points_and_ignores_foreign_files(tmp_path, baseline):
    d = tmp_path / "s"
    gk.sweep(out=d, **KW)
    foreign = _damage(d)
    recomputed = []
    with pytest.warns(SweepDirectoryWarning) as record:
        res = gk.sweep(out=d, resume=True, on_point=lambda r: recomputed.append(r["point"]),
                       **KW)
    _check_warnings(record, "recomputed")
    assert recomputed == [0, 1, 2, 3]
    _same(baseline, res)
    for name, t in foreign.items():  # never merged, never deleted
        assert (d / "points" / name).read_text() == t
    (d / "points" / "notes.json").unlink()
    (d / "points" / "abc.txt").unlink()
    (d / "points" / "00099.json").unlink()
    _same(baseline, gk.load_sweep(d))  # the recomputed files verify: no warning
    assert json.loads((d / "results.json").read_text())["results"] == baseline.rows
    assert (d / "results.csv").read_text().count("\n") == len(baseline.rows) + 1


def test_point_files_from_another_stream_or_without_checksum_are_recomputed(tmp_path,
                                                                           baseline):
    d = tmp_path / "s"
    gk.sweep(out=d, **KW)
    p = d / "points" / "00001.json"
    rec = json.loads(p.read_text())
    rec["stream"] = "philox4x32-10/gradkern-1"
    del rec["sha256"]
    rec["sha256"] = sweep_store.checksum(rec)  # a consistent file of another stream
    p.write_text(json.dumps(rec))
    old = json.loads((d / "points" / "00002.json").read_text())
    del old["sha256"], old["stream"]  # as an older gradkern wrote it
    (d / "points" / "00002.json").write_text(json.dumps(old))
    with pytest.warns(SweepDirectoryWarning, match=r"00001\.json \(differs .* in: stream\)"
                      r".*00002\.json \(no checksum"):
        _same(baseline, gk.sweep(out=d, resume=True, **KW))


def test_records_read_back_are_the_records_written(tmp_path):
    d = tmp_path / "s"
    written = []
    gk.sweep("ReLU", 2, samples=4096, backend="cpu", out=d, on_point=written.append)
    assert gk.load_sweep(d).records == json.loads(json.dumps(written))


def test_copy_of_a_sweep_directory_loads(tmp_path, baseline):
    d = tmp_path / "s"
    gk.sweep(out=d, **KW)
    shutil.copytree(d, tmp_path / "copy")  # no absolute paths in the checks
    _same(baseline, gk.load_sweep(tmp_path / "copy"))
