"""The deletion service: an OpenDSR-shaped HTTP API over a run, a durable SQLite ledger, a batching
scheduler that picks the cheaper plan, and Ed25519-signed receipts (``obliviate serve``; extra ``serve``).

Modules: :mod:`~.schema` (request bodies), :mod:`~.auth` (bearer tokens), :mod:`~.ledger` (SQLite),
:mod:`~.scheduler` (batches, plans, receipts' contents), :mod:`~.receipts` (signing, verifying),
:mod:`~.core` (the service's state and submission checks), :mod:`~.app` (routes). See docs/service.md.
"""

from .receipts import verify_receipt

__all__ = ["verify_receipt"]
