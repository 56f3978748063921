"""User-facing error types.

Every exception derived from :class:`EvalbenchError` carries a one-line message
that names the offending file, field or value and says what to do.  The CLI
prints it as ``evalbench: error: <message>`` and exits with status 2, never a
traceback.  Anything else escaping the library is a bug.
"""

import errno

# errno values of a write that failed for want of room, and how each is said (see DiskFullError)
DISK_FULL = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file would exceed the file system's or the process's file-size limit (ulimit -f)",
}


class EvalbenchError(Exception):
    """A mistake in input, configuration or environment that the user can fix."""


class SpecError(EvalbenchError):
    """A task, suite or encoder YAML file is malformed."""


class UnknownNameError(EvalbenchError):
    """A task, suite, encoder, adapter, metric or probe name is not known."""


class DatasetNotReadyError(EvalbenchError):
    """A task's dataset has not been prepared under the data root."""


class DataError(EvalbenchError):
    """A prepared dataset is inconsistent with its task spec (bad label, missing file...)."""


class DownloadError(EvalbenchError):
    """A download failed, did not match its pinned checksum, or could not be unpacked safely."""


class AudioDecodeError(DataError):
    """An audio file could not be decoded."""


class MetricUndefinedError(EvalbenchError):
    """A metric cannot be computed on the given labels (e.g. ROC-AUC with one class)."""


class ResultsError(EvalbenchError):
    """A run record is malformed or from an unknown schema version."""


class DiskFullError(EvalbenchError):
    """A write failed because the disk, the user's quota or the file-size limit is exhausted.

    Raised by :mod:`evalbench.utils.io` for ``ENOSPC``, ``EDQUOT`` and ``EFBIG``
    after removing its temporary file, so nothing partial is left and the file
    at ``path`` (if any) is the previous one.  Worth its own type: it is the
    environment's fault, not the input's, and the fix is the same everywhere.

    Attributes:
        path: The file that could not be written.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path
