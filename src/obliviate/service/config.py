"""Settings of the deletion service, read from a TOML file (``obliviate serve RUN --config FILE``).

Example (paths relative to the file; every key but ``tokens`` optional)::

    ledger = "ledger.sqlite"               # default: RUN.service/ledger.sqlite
    signing_key = "receipt-key.pem"        # default: RUN.service/receipt-signing-key.pem, created on first start
    subject_key_file = "/secrets/subject.key"  # default: $OBLIVIATE_SUBJECT_KEY

    [scheduler]
    window_s = 2.0       # a batch starts when its oldest request has waited this long ...
    max_batch = 64       # ... or when this many requests are pending
    method = "deepobliviate"
    verify = false       # run obliviate.verify.verify_request after each batch (slow: trains oracles)
    verify_oracles = 4

    [[tokens]]
    name = "privacy-desk"
    sha256 = "<sha256 of the token, from `obliviate serve-token`>"
    scopes = ["submit", "read"]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataFileNotFoundError
from .auth import TokenAuth, TokenEntry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class SchedulerSettings:
    window_s: float = 2.0
    max_batch: int = 64
    method: str = "deepobliviate"
    verify: bool = False
    verify_oracles: int = 4
    poll_s: float = 0.05

    def __post_init__(self) -> None:
        from ..unlearning import methods

        if not self.window_s >= 0:
            raise ConfigError(f"scheduler.window_s must be >= 0 seconds, got {self.window_s}")
        if not (isinstance(self.max_batch, int) and self.max_batch >= 1):
            raise ConfigError(f"scheduler.max_batch must be an integer >= 1, got {self.max_batch!r}")
        if self.method not in methods():
            raise ConfigError(f"scheduler.method {self.method!r} is unknown; choose one of {', '.join(methods())}")
        if not 4 <= self.verify_oracles <= 128:
            raise ConfigError("scheduler.verify_oracles must be an int in [4, 128] (obliviate.verify's range)")


@dataclass(frozen=True)
class ServiceConfig:
    run: Path
    ledger: Path
    signing_key: Path
    auth: TokenAuth
    subject_key_file: Path | None = None
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)

    @classmethod
    def load(cls, run: str | Path, path: str | Path | None) -> ServiceConfig:
        run = Path(run)
        default_dir = run.parent / f"{run.name}.service"
        if path is None:
            path = default_dir / "service.toml"
            if not path.is_file():
                raise ConfigError(f"no service config: pass --config FILE (or create {path}) naming at least one "
                                  f"token; make one with `obliviate serve-token --name NAME --scopes submit,read`")
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise DataFileNotFoundError(f"service config {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_dict(run, data, base=path.parent, default_dir=default_dir)

    @classmethod
    def from_dict(cls, run: Path, data: dict[str, Any], *, base: Path, default_dir: Path) -> ServiceConfig:
        known = {"ledger", "signing_key", "subject_key_file", "scheduler", "tokens"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown service setting(s) {unknown}; known: {', '.join(sorted(known))}")

        def where(key: str, default: Path | None) -> Path | None:
            return (base / data[key]) if key in data else default

        try:
            tokens = [TokenEntry(str(t["name"]), str(t["sha256"]).lower(), frozenset(t.get("scopes", [])))
                      for t in data.get("tokens", [])]
            sched = SchedulerSettings(**data.get("scheduler", {}))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"service config: {exc}; see `obliviate serve --help` and docs/service.md") from None
        return cls(run=run, ledger=where("ledger", default_dir / "ledger.sqlite"),  # type: ignore[arg-type]
                   signing_key=where("signing_key", default_dir / "receipt-signing-key.pem"),  # type: ignore[arg-type]
                   auth=TokenAuth(tokens), subject_key_file=where("subject_key_file", None), scheduler=sched)
