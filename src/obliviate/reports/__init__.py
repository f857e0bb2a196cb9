"""One self-contained HTML report of a run: training, forget requests, verification and the threat audit.

``build_report(run, verify=..., audits=[...])`` returns the page as text; figures are matplotlib PNGs
embedded as base64 data URIs and the page has no script, so it opens offline and prints as it looks.
The page is laid out by a jinja2 template (``templates/report.html.j2``) with autoescaping on.

>>> import tempfile
>>> build_report(tempfile.mkdtemp())  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
obliviate.errors.StoreError: ... is not an obliviate run (no manifest.json); create one with `obliviate train`
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_report", "write_report"]


def build_report(run_path: str | Path, *, verify: str | Path | None = None,
                 audits: Sequence[str | Path] = ()) -> str:
    """The report of the run at ``run_path`` (with an optional verification JSON and audit JSONs) as HTML."""
    from ..store.run_store import RunStore
    from .context import audit_section, load_json_file, request_sections, run_section, verification_section

    root = Path(run_path)
    manifest = RunStore.open(root).manifest  # read only: the report never writes to a store
    verification = None
    if verify is not None:
        verification = verification_section(load_json_file(verify, "verification"), Path(verify).name)
    audit_parts = [audit_section(load_json_file(a, "audit"), Path(a).name) for a in audits]
    context: dict[str, Any] = {
        "title": root.resolve().name, "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": _version(), "run": run_section(root, manifest), "requests": request_sections(manifest),
        "verification": verification, "audits": audit_parts,
    }
    html: str = _template().render(**context)  # jinja2 is typed, but the template object is built lazily
    return html


def write_report(run_path: str | Path, out: str | Path, **kwargs: Any) -> Path:
    """Build the report and write it to ``out`` atomically (a temporary file renamed into place)."""
    html = build_report(run_path, **kwargs)
    target = Path(out)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    return target


def _template() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("obliviate.reports", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("obliviate")
    except Exception:  # noqa: BLE001 (an uninstalled checkout)
        return "unknown"
