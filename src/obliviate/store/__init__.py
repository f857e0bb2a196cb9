"""The run store: manifest, safetensors payloads, content hashes, atomic commit, purge, lock."""

from .files import atomic_write_bytes, file_lock, sha256_bytes
from .payloads import flatten_optimizer_state, tensors_from_bytes, tensors_to_bytes, unflatten_optimizer_state
from .run_store import FORMAT, FORMAT_VERSION, RunStore, is_ref, iter_refs

__all__ = ["FORMAT", "FORMAT_VERSION", "RunStore", "atomic_write_bytes", "file_lock", "flatten_optimizer_state",
           "is_ref", "iter_refs", "sha256_bytes", "tensors_from_bytes", "tensors_to_bytes",
           "unflatten_optimizer_state"]
