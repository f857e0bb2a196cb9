"""One exception tree for the whole library.

Every error raised on purpose derives from :class:`ObliviateError` and also from the matching builtin,
so ``except ValueError`` keeps working for callers who do not know this library. Messages name the
problem and the fix. The command line maps :class:`UsageError` subclasses to exit code 2.

>>> issubclass(ConfigError, ValueError) and issubclass(ConfigError, ObliviateError)
True
"""

from __future__ import annotations


class ObliviateError(Exception):
    """Base of every error this library raises on purpose."""


class UsageError(ObliviateError):
    """The caller gave something we cannot use (bad input, bad config, bad store). CLI exit code 2."""


class ConfigError(UsageError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class DataError(UsageError, ValueError):
    """A dataset file is missing or malformed."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """An expected dataset file does not exist."""


class UnknownNameError(UsageError, KeyError):
    """A name (dataset, model, attack, method...) is not in its registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StoreError(UsageError):
    """A run store cannot be used as asked."""


class StoreFormatError(StoreError, ValueError):
    """The store was written in a format version this library does not read."""


class IntegrityError(StoreError):
    """A stored payload is missing or its content hash does not match the manifest."""


class StoreLockedError(StoreError, TimeoutError):
    """Another process holds the store's lock."""


class RequestError(UsageError, ValueError):
    """A deletion or verification request is malformed (unknown ids, bad id file, unknown request)."""


class CheckFailed(ObliviateError):
    """A verification or integrity check ran and failed. CLI exit code 1."""


class FileAccessError(UsageError, OSError):
    """A file or folder the caller named cannot be read or written (missing, a directory, permissions, full disk)."""


# errno -> (what went wrong, how to fix it); the message never quotes a file's content
_OS_HINTS = {
    "ENOENT": ("does not exist", "check the path"),
    "EISDIR": ("is a folder, not a file", "give the path of a file"),
    "ENOTDIR": ("has a part that is a file, not a folder", "check the path"),
    "EACCES": ("cannot be accessed (permission denied)", "fix its permissions or use another path"),
    "EPERM": ("cannot be accessed (operation not permitted)", "fix its permissions or use another path"),
    "EROFS": ("is on a read-only file system", "copy it to a writable place or use another path"),
    "ENOSPC": ("cannot be written: no space left on the device", "free some space and run the command again"),
    "EDQUOT": ("cannot be written: disk quota exceeded", "free some space and run the command again"),
    "EEXIST": ("already exists", "choose another path"),
    "ENAMETOOLONG": ("has a name that is too long", "use a shorter path"),
    "EMFILE": ("cannot be opened: too many open files", "raise the limit (ulimit -n) and run it again"),
    "EIO": ("cannot be read or written: input/output error", "check the disk"),
}


def file_error(exc: OSError, what: str = "", path: object = None) -> FileAccessError:
    """The :class:`FileAccessError` for an ``OSError`` met while using a user's file: one line with the
    problem and the fix, naming the path (never the file's content).

    >>> import errno
    >>> str(file_error(IsADirectoryError(errno.EISDIR, "Is a directory", "cfg"), "config file"))
    'config file cfg is a folder, not a file; give the path of a file'
    >>> str(file_error(OSError(errno.ENOSPC, "No space left on device", "run/x.tmp")))
    'run/x.tmp cannot be written: no space left on the device; free some space and run the command again'
    """
    import errno as _errno

    name = _errno.errorcode.get(exc.errno or 0, "")
    target = path if path is not None else (exc.filename if exc.filename is not None else "a file")
    label = f"{what} {target}".strip()
    problem, fix = _OS_HINTS.get(name, (f"cannot be used ({exc.strerror or type(exc).__name__})",
                                        "check the path and its permissions"))
    err = FileAccessError(f"{label} {problem}; {fix}")
    err.errno = exc.errno  # keep errno for callers testing it
    return err


class ReproducibilityError(UsageError):
    """A replay was asked to be bit-exact (``--strict``) under other conditions than the run was recorded under."""


class DataChangedError(StoreError, DataError):
    """The source data of a run changed since it was trained (the message names the samples)."""
