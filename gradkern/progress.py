"""A one-line progress bar on stderr: points, samples, rate and ETA.

Self-written (no tqdm): it redraws at most every 0.2 s and stays silent when
the stream is not a terminal, so logs and CI output hold no control codes.
"""
import sys
import time

__all__ = ["Progress", "format_line"]


def _si(v):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def _hms(seconds):
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_line(done, total, points_done, points_total, rate, width=24):
    """``[#####-----]  45%  3/17 points  450M/1G samples  12.3M/s  ETA 00:45``."""
    frac = done / total if total else 1.0
    filled = int(width * frac)
    eta = (total - done) / rate if rate and rate > 0 else None
    return (f"[{'#' * filled}{'-' * (width - filled)}] {100 * frac:3.0f}%  "
            f"{points_done}/{points_total} points  {_si(done)}/{_si(total)} samples  "
            f"{_si(rate) if rate else '-'}/s  ETA {_hms(eta)}")


class Progress:
    """Progress of a sweep of ``points_total`` points, ``total`` samples.

    ``done``/``points_done`` start where a resumed sweep starts; the rate
    counts only samples computed since this bar was made.
    """

    def __init__(self, total, points_total, *, done=0, points_done=0, enabled=True,
                 stream=None, interval=0.2):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled) and getattr(self.stream, "isatty", lambda: False)()
        self.total, self.points_total = total, points_total
        self.done, self.points_done = done, points_done
        self._start_done = done
        self._t0 = time.perf_counter()
        self._last = 0.0
        self.interval = interval

    @property
    def rate(self):
        dt = time.perf_counter() - self._t0
        return (self.done - self._start_done) / dt if dt > 0 else 0.0

    def advance(self, samples=0, points=0):
        self.done += samples
        self.points_done += points
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.interval or points):
            self._last = now
            self._draw()

    def _draw(self):
        line = format_line(self.done, self.total, self.points_done, self.points_total, self.rate)
        self.stream.write("\r" + line + "\033[K")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
