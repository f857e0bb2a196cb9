"""Signed deletion receipts: Ed25519 over a canonical JSON document.

A receipt file is the canonical JSON (sorted keys, no spaces, ASCII, one final newline) of
``{"receipt": {...}, "signature": {"algorithm": "Ed25519", "key_id": ..., "value": base64}}``; the
signature covers the canonical JSON of ``receipt``. :func:`verify_receipt` accepts only a file that is
byte for byte canonical, so any changed byte fails: it breaks the JSON, the canonical form, or the
signature. The verifier is given the public key; the receipt names only its fingerprint (``key_id``).

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.generate()
>>> blob = sign_receipt({"request_id": "r1", "samples": 2}, key)
>>> verify_receipt(blob, public_key_pem(key))["samples"]
2
>>> verify_receipt(blob.replace(b'"samples":2', b'"samples":3'), public_key_pem(key))
Traceback (most recent call last):
...
obliviate.errors.CheckFailed: the receipt's signature does not verify with this public key: it was altered, or signed by another key
"""  # noqa: E501 (a doctest's expected one-line error)

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import CheckFailed, DataError, DataFileNotFoundError

FORMAT = "obliviate-deletion-receipt"
VERSION = 1

PROVES = ("The operator holding this signing key states that, at the time given, the samples counted here (those of "
          "the listed subject key hashes and sample ids) were removed from the run's training record and the model "
          "was moved from the state hashed 'model_before' to the state hashed 'model_after' by the named unlearning "
          "method, and that the stored states of the retrained blocks from before the deletion were purged. With the "
          "run store, anyone can recompute 'model_after' and replay the retrained blocks to check the chain.")
DOES_NOT_PROVE = ("It does not prove that the operator trained the model the way its records say, that no other copy "
                  "of the data or of an earlier model exists, or that a model served elsewhere is 'model_after': a "
                  "provider who lies about its training cannot be caught by black-box checks alone. The verification "
                  "summary (when enabled) is a statistical test against retrained reference models, not a proof.")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_or_create_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The service's signing key (PKCS#8 PEM, mode 0600), created on first use; the public key is written
    beside it as ``<path>.pub`` for receipt holders."""
    path = Path(path)
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise DataError(f"{path} is not an Ed25519 private key; remove it to let the service create one")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
    pub = path.with_name(path.name + ".pub")
    if not pub.is_file() or pub.read_bytes() != public_key_pem(key):
        pub.write_bytes(public_key_pem(key))
    return key


def sign_receipt(receipt: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """The receipt file's bytes."""
    body = {**receipt, "signing_key_id": key_id(key.public_key())}
    sig = base64.b64encode(key.sign(canonical(body))).decode()
    return canonical({"receipt": body, "signature": {"algorithm": "Ed25519", "key_id": body["signing_key_id"],
                                                     "value": sig}}) + b"\n"


def load_public_key(data: bytes | str | Path) -> Ed25519PublicKey:
    """A public key from PEM bytes, or from a file holding PEM."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataFileNotFoundError(f"public key file {path} does not exist") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise DataError("the public key is not a PEM Ed25519 public key (the service writes it as "
                        "<signing_key>.pub and serves it at GET /discovery)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise DataError("the public key is not an Ed25519 key")
    return key


def verify_receipt(blob: bytes, public_key: bytes | str | Path | Ed25519PublicKey) -> dict[str, Any]:
    """The receipt's contents when ``blob`` is a canonical receipt signed by ``public_key``; else
    :class:`~obliviate.errors.CheckFailed` saying what is wrong."""
    pub = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
    try:
        doc = json.loads(blob.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CheckFailed("the receipt is not valid JSON: it was altered or truncated") from None
    if not (isinstance(doc, dict) and set(doc) == {"receipt", "signature"} and isinstance(doc["receipt"], dict)
            and isinstance(doc["signature"], dict)):
        raise CheckFailed("the file is not an obliviate deletion receipt")
    try:
        again = canonical(doc) + b"\n"
    except ValueError:
        raise CheckFailed("the receipt holds values a receipt cannot hold: it was altered") from None
    if again != blob:
        raise CheckFailed("the receipt is not in its canonical form: it was altered after signing")
    sig = doc["signature"]
    if set(sig) != {"algorithm", "key_id", "value"} or not isinstance(sig["value"], str) \
            or sig["algorithm"] != "Ed25519" or sig["key_id"] != doc["receipt"].get("signing_key_id"):
        raise CheckFailed("the receipt's signature block does not match its contents")
    if sig["key_id"] != key_id(pub):
        raise CheckFailed("the receipt was signed by another key than this public key (key id differs)")
    try:
        pub.verify(base64.b64decode(sig["value"], validate=True), canonical(doc["receipt"]))
    except (InvalidSignature, ValueError, TypeError):
        raise CheckFailed("the receipt's signature does not verify with this public key: it was altered, or "
                          "signed by another key") from None
    return dict(doc["receipt"])
