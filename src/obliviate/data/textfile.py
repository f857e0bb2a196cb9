"""Reading the small text files a user hands us (configs, id files, order files) with one-line errors.

A folder, a missing or unreadable file, binary content or text that is not UTF-8 each raise a
:class:`~obliviate.errors.UsageError` naming the path and the fix. Messages never quote the content.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "ids.txt"
>>> _ = p.write_bytes("1\\n2\\n".encode("utf-16"))
>>> read_user_text(p, "id file")
Traceback (most recent call last):
...
obliviate.errors.DataError: id file ... is not UTF-8 text (it looks like UTF-16); save it as UTF-8 (plain text)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, DataFileNotFoundError, ObliviateError, file_error

MAX_TEXT_BYTES = 256 * 2**20  # id and config files are small; refuse to slurp a disk image by mistake


def read_user_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of ``path`` (a leading BOM is dropped); ``what`` names the file in errors."""
    path = Path(path)
    try:
        if path.is_dir():
            raise DataError(f"{what} {path} is a folder, not a file; give the path of a file")
        if not path.exists():
            raise DataFileNotFoundError(f"{what} {path} does not exist; check the path")
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise DataError(f"{what} {path} is larger than {MAX_TEXT_BYTES >> 20} MiB; is it the right file?")
        data = path.read_bytes()
    except ObliviateError:
        raise
    except OSError as exc:
        raise file_error(exc, what, path) from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{what} {path} is not UTF-8 text (it looks like UTF-16); save it as UTF-8 (plain text)")
    if b"\x00" in data:
        raise DataError(f"{what} {path} is binary, not a text file; give a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {path} is not UTF-8 text (invalid byte at offset {exc.start}); save it as "
                        f"UTF-8 (plain text)") from None
    return text[1:] if text.startswith("\ufeff") else text
