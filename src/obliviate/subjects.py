"""Data subjects: which samples of a run belong to which person, with keys never stored in clear.

A user attaches a mapping ``subject key -> sample ids`` (a CSV file ``subject,sample_id`` or a dict) to a
run. The run keeps an index from a *keyed hash* of each subject key (HMAC-SHA256) to its sample ids, in a
payload named by the manifest (``manifest["subjects"]``), committed atomically like every other change.
Customer numbers are easy to enumerate, so a plain or salted hash stored beside its salt would protect
little; the HMAC secret therefore lives **outside the run store**: in the environment variable
``OBLIVIATE_SUBJECT_KEY`` or in a key file whose path the caller gives (``--subject-key-file``).

If the secret is lost, subjects can no longer be looked up (nobody can compute their hashes), but every
sample can still be deleted by its id (``obliviate forget RUN --ids FILE``). The manifest keeps a short
check value of the secret (an HMAC of a fixed string, which reveals nothing of the secret) so a wrong
secret is reported as such instead of as "unknown subject".

>>> import tempfile
>>> from obliviate.training import RunConfig, train_run
>>> run = train_run(RunConfig.from_dict({"training": {"blocks": 2, "epochs_per_block": 1}}), tempfile.mkdtemp() + "/r")
>>> secret = "a secret of at least sixteen characters"
>>> a, b = (int(i) for i in run.block_ids(2)[:2])
>>> summary = attach_subjects(run, {"customer-4711": [a, b]}, key=secret)
>>> summary["subjects"], summary["samples"]
(1, 2)
>>> [s.sample_ids for s in lookup_subjects(run, ["customer-4711"], key=secret)] == [sorted([a, b])]
True
>>> result = forget_subject(run, ["customer-4711"], key=secret)
>>> sorted(result.ids_deleted) == sorted([a, b]), result.subject_hashes == [subject_hash("customer-4711", secret)]
(True, True)
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError, DataFileNotFoundError, RequestError, UsageError

KEY_ENV = "OBLIVIATE_SUBJECT_KEY"
ALGORITHM = "hmac-sha256"
MIN_SECRET_BYTES = 16
_CHECK_MESSAGE = b"obliviate subject key check v1"
_PREFIX = b"obliviate subject v1\x00"


class SubjectKeyError(UsageError):
    """No usable secret for the keyed hashes of subject keys."""


class UnknownSubjectError(RequestError, KeyError):
    """A subject is not in the run's subject index."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def subject_secret(key: bytes | str | None = None, *, key_file: str | Path | None = None) -> bytes:
    """The HMAC secret: ``key`` itself, else the contents of ``key_file``, else ``$OBLIVIATE_SUBJECT_KEY``."""
    if key is None and key_file is not None:
        path = Path(key_file)
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            raise DataFileNotFoundError(f"subject key file {path} does not exist") from None
    if key is None:
        key = os.environ.get(KEY_ENV)
    if key is None:
        raise SubjectKeyError(f"no subject key: set {KEY_ENV} or pass --subject-key-file FILE (the secret of the "
                              f"keyed hashes of subject keys; keep it outside the run store)")
    secret = key.encode() if isinstance(key, str) else bytes(key)
    if len(secret) < MIN_SECRET_BYTES:
        raise SubjectKeyError(f"the subject key is {len(secret)} bytes long; use at least {MIN_SECRET_BYTES} "
                              f"random bytes, e.g. `python -c \"import secrets; print(secrets.token_hex(32))\"`")
    return secret


def subject_hash(subject: str, secret: bytes | str) -> str:
    """The keyed hash (HMAC-SHA256, hex) under which ``subject`` is stored.

    >>> subject_hash("customer-4711", "k" * 16)[:12]
    '0af00561b1e3'
    """
    if isinstance(secret, str):
        secret = secret.encode()
    return hmac.new(secret, _PREFIX + subject.encode("utf-8"), hashlib.sha256).hexdigest()


def key_check(secret: bytes) -> str:
    return hmac.new(secret, _CHECK_MESSAGE, hashlib.sha256).hexdigest()[:16]


def read_subject_map(path: str | Path) -> dict[str, list[int]]:
    """``subject -> sample ids`` from a CSV file with a header naming the columns ``subject`` and ``sample_id``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileNotFoundError(f"subject map {path} does not exist") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip() for h in next(rows, [])]
    if "subject" not in header or "sample_id" not in header:
        raise DataError(f"{path}: the first line must name the columns subject and sample_id (got {header})")
    si, ii = header.index("subject"), header.index("sample_id")
    out: dict[str, list[int]] = {}
    for lineno, row in enumerate(rows, 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise DataError(f"{path}, line {lineno}: expected {len(header)} columns, got {len(row)}")
        subject, raw = row[si].strip(), row[ii].strip()
        if not subject:
            raise DataError(f"{path}, line {lineno}: empty subject")
        try:
            out.setdefault(subject, []).append(int(raw))
        except ValueError:
            raise DataError(f"{path}, line {lineno}: expected an integer sample_id, got {raw!r}") from None
    if not out:
        raise DataError(f"{path} maps no subject to any sample")
    return out


def _known_ids(run: Any) -> set[int]:
    deleted: set[int] = run.deleted_ids()
    return set(run.block_of()) | deleted


def attach_subjects(run: Any, mapping: Mapping[str, Iterable[int]] | str | Path, *, key: bytes | str | None = None,
                    key_file: str | Path | None = None, replace: bool = False, wait: float = 0.0) -> dict[str, Any]:
    """Store the subject index of ``run`` (a dict or a CSV path); returns a summary. See the module docstring."""
    if isinstance(mapping, (str, Path)):
        mapping = read_subject_map(mapping)
    secret = subject_secret(key, key_file=key_file)
    if key_file is not None and Path(run.path).resolve() in Path(key_file).resolve().parents:
        raise SubjectKeyError(f"the subject key file {key_file} lies inside the run store; keep it elsewhere "
                              f"(whoever can read the run could then look subjects up)")
    index: dict[str, list[int]] = {}
    for subject, ids in mapping.items():
        if not isinstance(subject, str) or not subject:
            raise DataError(f"subject keys must be non-empty strings, got {subject!r}")
        h = subject_hash(subject, secret)
        index[h] = sorted(set(index.get(h, [])) | {int(i) for i in ids})
    known = _known_ids(run)
    unknown = sorted({i for ids in index.values() for i in ids} - known)
    if unknown:
        shown = ", ".join(map(str, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
        raise RequestError(f"{len(unknown)} sample id(s) of the subject map are not training samples of this run: "
                           f"{shown}; nothing was changed")
    store = run.store
    with store.lock(exclusive=True, timeout=wait):
        store.reload()
        if store.manifest.get("subjects") and not replace:
            raise UsageError(f"{run.path} already has a subject index; pass --replace (replace=True) to replace it")
        hashes = sorted(index)
        id_lists = [index[h] for h in hashes]
        payload = {
            "hashes": torch.from_numpy(np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), dtype=np.uint8)
                                       .reshape(len(hashes), 32).copy()),
            "offsets": torch.from_numpy(np.cumsum([0] + [len(x) for x in id_lists]).astype(np.int64)),
            "ids": torch.tensor([i for x in id_lists for i in x], dtype=torch.int64)}
        entry = {"index": store.put("subjects", payload, {"algorithm": ALGORITHM}), "algorithm": ALGORITHM,
                 "key_check": key_check(secret), "subjects": len(hashes),
                 "samples": int(sum(len(x) for x in id_lists)),
                 "attached": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        store.commit({**store.manifest, "subjects": entry})
        store.collect_garbage()  # a replaced index leaves no trace
    return {k: entry[k] for k in ("subjects", "samples", "algorithm", "attached")}


def load_index(run: Any) -> dict[str, list[int]]:
    """The stored index ``hash -> sample ids`` (empty when the run has none)."""
    return read_index(run.store, run.manifest.get("subjects"))


def read_index(store: Any, entry: dict[str, Any] | None) -> dict[str, list[int]]:
    """The index named by a manifest's ``subjects`` entry, read from ``store``."""
    if not entry:
        return {}
    t = store.get(entry["index"])
    raw, offsets, ids = t["hashes"].numpy(), t["offsets"].numpy(), t["ids"].numpy()
    return {bytes(raw[j]).hex(): ids[offsets[j]:offsets[j + 1]].tolist() for j in range(len(raw))}


@dataclass(frozen=True)
class SubjectSamples:
    """One subject's samples: ``blocks[i]`` is the current block of ``sample_ids[i]`` (None: deleted)."""

    subject_hash: str
    sample_ids: list[int]
    blocks: list[int | None]

    def to_dict(self) -> dict[str, Any]:
        return {"subject_hash": self.subject_hash, "sample_ids": self.sample_ids, "blocks": self.blocks,
                "deleted": [i for i, b in zip(self.sample_ids, self.blocks) if b is None]}


def resolve_hashes(run: Any, hashes: Sequence[str], *, secret_check: str | None = None) -> list[SubjectSamples]:
    """The samples of subjects given by their keyed hashes; unknown ones raise :class:`UnknownSubjectError`."""
    entry = run.manifest.get("subjects")
    if not entry:
        raise UnknownSubjectError(f"{run.path} has no subject index; attach one with "
                                  f"`obliviate subjects {run.path} --map FILE`")
    index = load_index(run)
    missing = [n for n, h in enumerate(hashes, 1) if h not in index]
    if missing:
        hint = ("the subject key differs from the one the index was made with (check " + KEY_ENV + ")"
                if secret_check is not None and secret_check != entry.get("key_check")
                else "check the key's spelling")
        raise UnknownSubjectError(f"{len(missing)} of {len(hashes)} subject(s) are not in the run's subject index "
                                  f"(number {', '.join(map(str, missing[:20]))} as given); {hint}; nothing was changed")
    block_of = run.block_of()
    return [SubjectSamples(h, index[h], [block_of.get(i) for i in index[h]]) for h in hashes]


def lookup_subjects(run: Any, subjects: Iterable[str], *, key: bytes | str | None = None,
                    key_file: str | Path | None = None) -> list[SubjectSamples]:
    """The samples and current blocks of each subject (clear keys, hashed with the secret)."""
    secret = subject_secret(key, key_file=key_file)
    keys = list(subjects)
    if not keys:
        raise RequestError("no subject given; name at least one")
    return resolve_hashes(run, [subject_hash(s, secret) for s in keys], secret_check=key_check(secret))


def forget_subject(run: Any, subjects: Iterable[str], *, key: bytes | str | None = None,
                   key_file: str | Path | None = None, method: str = "deepobliviate", options: Any = None,
                   wait: float = 0.0, client_ref: str | None = None) -> Any:
    """Delete every sample of ``subjects`` with :func:`obliviate.unlearning.forget`; the request record keeps
    only the subjects' keyed hashes. Unknown subjects raise before anything changes."""
    from .unlearning import forget

    found = lookup_subjects(run, subjects, key=key, key_file=key_file)
    ids = sorted({i for s in found for i in s.sample_ids})
    return forget(run, ids, method=method, options=options, wait=wait,
                  subject_hashes=sorted({s.subject_hash for s in found}), client_ref=client_ref)


def read_subject_keys(path: str | Path) -> list[str]:
    """Subject keys from a text file, one a line (blank lines ignored; no comments: a key may hold ``#``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataFileNotFoundError(f"subjects file {path} does not exist") from None
    keys = [line.strip() for line in lines if line.strip()]
    if not keys:
        raise DataError(f"subjects file {path} names no subject")
    return keys
