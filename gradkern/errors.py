"""Every exception and warning class gradkern raises, in one hierarchy.

Bad input is always a ``ValueError`` or ``TypeError`` naming the argument;
the classes here add what a caller may want to catch separately.  All are
re-exported by ``import gradkern``.
"""

__all__ = ["BackendUnavailableError", "SweepDirectoryError", "ManifestMismatch",
           "TaskTimeoutError", "GradkernWarning", "KernelCacheWarning",
           "SweepDirectoryWarning"]


class BackendUnavailableError(RuntimeError):
    """A known backend that cannot run here: its library is not built, or it
    needs a GPU there is none of.  The message says what to do."""


class SweepDirectoryError(ValueError):
    """A sweep's ``out`` directory that gradkern will not write into: not a
    sweep directory, or one holding a different sweep."""


class ManifestMismatch(SweepDirectoryError):
    """``resume`` into a directory whose manifest describes another sweep."""


class TaskTimeoutError(TimeoutError):
    """A distributed sweep task that did not finish in time, even resubmitted."""


class GradkernWarning(UserWarning):
    """Base of gradkern's warnings."""


class KernelCacheWarning(GradkernWarning):
    """The on-disk kernel cache could not be used as is (a damaged entry was
    dropped, or no writable location: kernels are compiled in memory).  The
    numbers are unaffected; only start-up time is."""


class SweepDirectoryWarning(GradkernWarning):
    """A file in a sweep directory that was not trusted: a damaged point
    (recomputed) or a foreign file (ignored)."""
