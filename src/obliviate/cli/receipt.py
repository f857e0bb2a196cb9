"""``obliviate receipt verify FILE --public-key KEY``: check a deletion receipt's Ed25519 signature.

Exit 0 when it verifies, 1 when it does not (altered, or signed by another key), 2 when a file is unreadable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import emit_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("receipt", help="verify a signed deletion receipt of `obliviate serve`")
    rsub = p.add_subparsers(dest="receipt_command", metavar="ACTION")
    rsub.required = True
    v = rsub.add_parser("verify", help="check a receipt's signature with the service's public key")
    v.add_argument("file", help="receipt file (as GET /receipts/{id} returns it)")
    v.add_argument("--public-key", required=True, metavar="KEY",
                   help="the service's public key, PEM (its signing key file + .pub, or GET /discovery)")
    v.add_argument("--json", action="store_true", help="print the verified receipt as JSON on stdout")
    v.set_defaults(func=verify)


def verify(args: argparse.Namespace) -> int:
    from ..errors import DataFileNotFoundError
    from .serve import _need_extra

    _need_extra()
    from ..service.receipts import verify_receipt

    path = Path(args.file)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataFileNotFoundError(f"receipt file {path} does not exist") from None
    receipt = verify_receipt(blob, args.public_key)
    if args.json:
        emit_json(receipt)
    else:
        print(f"receipt OK: request {receipt.get('request_id')}, {receipt.get('samples')} sample(s), "
              f"model {str(receipt.get('model_before', {}).get('state_sha256'))[:12]} -> "
              f"{str(receipt.get('model_after', {}).get('state_sha256'))[:12]}, "
              f"signed by key {receipt['signing_key_id']}")
    return 0
