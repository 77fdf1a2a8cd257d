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
    """Base class of every error caused by input rather than by a bug."""


class ConfigError(LandscapeError, ValueError):
    """An invalid configuration value (width, activation, learning rate, ...)."""


class DataError(LandscapeError, ValueError):
    """An unknown data set name or malformed user arrays."""


class DataUnavailableError(DataError):
    """A known data set that is not prepared on this machine and cannot be fetched."""


class RunError(LandscapeError):
    """A problem with a run directory on disk."""


class RunNotFoundError(RunError, FileNotFoundError):
    """The run directory (or a file inside it) does not exist."""


class RunExistsError(RunError, FileExistsError):
    """The output directory exists and overwriting was not requested."""


class CorruptRunError(RunError, ValueError):
    """A run directory whose files are truncated, inconsistent or not ours."""


class StorageError(RunError, OSError):
    """A file-system fault: a full disk, a read-only or missing directory, no permission."""
