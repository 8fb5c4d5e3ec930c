"""Serve the console's browser files from the installed package (importlib.resources): no CDN, no build step.

Only names that exist directly in `static/` with a known type are served, so a request can never walk out of the
folder. A strict Content-Security-Policy keeps the page to its own origin: nothing is fetched from elsewhere.
"""

from __future__ import annotations

import re
from importlib import resources

from fastapi import Response

PACKAGE = "domainlm.serving.console.static"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*\.(html|js|css)$")

# self only; inline SVG built with DOM calls needs nothing more. data: allows the empty favicon.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}


def names() -> list[str]:
    """Every file the console serves (what the package must ship)."""
    return sorted(p.name for p in resources.files(PACKAGE).iterdir() if NAME_RE.match(p.name))


def read(name: str) -> bytes | None:
    if not NAME_RE.match(name):
        return None
    file = resources.files(PACKAGE) / name
    return file.read_bytes() if file.is_file() else None


def response(name: str) -> Response | None:
    data = read(name)
    if data is None:
        return None
    suffix = name[name.rfind("."):]
    return Response(content=data, media_type=TYPES[suffix], headers=HEADERS)
