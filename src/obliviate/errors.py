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
