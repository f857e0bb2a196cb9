"""``obliviate serve RUN [--host 127.0.0.1] [--port N] [--config FILE]``: the deletion service (extra ``serve``),
and ``obliviate serve-token --name NAME --scopes submit,read``: a new bearer token and its config entry.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve erasure requests over HTTP (OpenDSR-shaped; needs obliviate[serve])")
    p.add_argument("run", help="run store folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="service config TOML: tokens, ledger, scheduler (default RUN.service/service.toml)")
    p.set_defaults(func=run)
    t = sub.add_parser("serve-token", help="make a bearer token for `obliviate serve` and its config entry")
    t.add_argument("--name", required=True, help="who holds the token (shown in the config only)")
    t.add_argument("--scopes", default="submit,read", help="comma-separated: submit, read, admin")
    t.set_defaults(func=make_token)


def _need_extra() -> None:
    try:
        import cryptography  # noqa: F401
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from ..errors import UsageError

        raise UsageError(f"the service needs the 'serve' extra ({exc.name} is missing): "
                         f"pip install 'obliviate[serve]'") from None


def run(args: argparse.Namespace) -> int:
    _need_extra()
    import uvicorn

    from ..service.app import create_app
    from ..service.config import ServiceConfig
    from ..service.core import DeletionService

    service = DeletionService(ServiceConfig.load(args.run, args.config))
    service.start()
    try:
        print(f"obliviate serve: {args.run} on http://{args.host}:{args.port} (ledger {service.config.ledger}; "
              f"receipt public key {service.config.signing_key}.pub)", file=sys.stderr, flush=True)
        uvicorn.run(create_app(service, manage_lifecycle=False), host=args.host, port=args.port, log_level="info")
    finally:
        service.stop()
    return 0


def make_token(args: argparse.Namespace) -> int:
    from ..service.auth import SCOPES, new_token
    from ..errors import ConfigError

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ConfigError(f"unknown scope(s) {bad or scopes}; choose from {', '.join(SCOPES)}")
    token, digest = new_token()
    print(f"# the token (shown once; give it to {args.name}, keep it out of the config):\n{token}\n"
          f"# the config entry:\n[[tokens]]\nname = {args.name!r}\nsha256 = \"{digest}\"\nscopes = {scopes!r}")
    return 0
