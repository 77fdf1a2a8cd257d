"""Exception types raised for bad input, missing data and unusable run directories.

Every error a user can cause derives from :class:`LandscapeError`; the CLI turns
these into one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

__all__ = [
    "LandscapeError",
    "ConfigError",
    "DataError",
    "DataUnavailableError",
    "RunError",
    "RunNotFoundError",
    "RunExistsError",
    "CorruptRunError",
    "StorageError",
]


class LandscapeError(Exception):
    """Base class of every error caused by input rather than by a bug.

    Examples:
      >>> try:
      ...     ls.data.load("no such set")
      ... except ls.LandscapeError as e:                          # every input error, one line
      ...     print(type(e).__name__)
      DataError
    """


class ConfigError(LandscapeError, ValueError):
    """An invalid configuration value (width, activation, learning rate, ...).

    Examples:
      >>> try:
      ...     ls.MLP(hidden=(-1,))
      ... except ls.ConfigError as e:                             # also a ValueError
      ...     print(isinstance(e, ValueError))
      True
    """


class DataError(LandscapeError, ValueError):
    """An unknown data set name or malformed user arrays.

    Examples:
      >>> try:
      ...     ls.data.from_arrays(np.zeros((5, 3)), np.zeros(4, int), np.zeros((2, 3)), np.zeros(2, int))
      ... except ls.DataError as e:
      ...     print(e)
      train has 5 inputs but 4 labels
    """


class DataUnavailableError(DataError):
    """A known data set that is not prepared on this machine and cannot be fetched.

    Examples:
      >>> issubclass(ls.DataUnavailableError, ls.DataError)       # raised by data.load for an unprepared set
      True
    """


class RunError(LandscapeError):
    """A problem with a run directory on disk.

    Examples:
      >>> issubclass(ls.RunNotFoundError, ls.errors.RunError) and issubclass(ls.StorageError, ls.errors.RunError)
      True
    """


class RunNotFoundError(RunError, FileNotFoundError):
    """The run directory (or a file inside it) does not exist.

    Examples:
      >>> try:
      ...     ls.load_run("/no/such/run")
      ... except ls.RunNotFoundError as e:                        # also a FileNotFoundError
      ...     print(isinstance(e, FileNotFoundError))
      True
    """


class RunExistsError(RunError, FileExistsError):
    """The output directory exists and overwriting was not requested.

    Examples:
      >>> issubclass(ls.RunExistsError, FileExistsError)         # save_run into an existing run without overwrite
      True
    """


class CorruptRunError(RunError, ValueError):
    """A run directory whose files are truncated, inconsistent or not ours.

    Examples:
      >>> import tempfile, os
      >>> d = tempfile.mkdtemp()
      >>> _ = open(os.path.join(d, "meta.json"), "w").write("{not json")
      >>> try:
      ...     ls.io.read_meta(d)
      ... except ls.CorruptRunError:
      ...     print("corrupt")
      corrupt
    """


class StorageError(RunError, OSError):
    """A file-system fault: a full disk, a read-only or missing directory, no permission.

    Examples:
      >>> issubclass(ls.StorageError, OSError)                     # a full disk, a read-only directory
      True
    """
