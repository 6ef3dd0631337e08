"""``/docs``: Swagger UI served from the installed package, never from a CDN.

FastAPI's default page loads its scripts from a public CDN: a blank page on a machine
without internet, and a third party told who reads the docs. Here every asset comes from
this server (the files fastapi-offline ships), under a Content Security Policy as strict
as the public pages' (plus ``data:`` images and ``connect-src 'self'``, which Swagger UI
needs for its icons and to fetch ``/openapi.json``).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
OWN = Path(__file__).resolve().parent / "static"
FILES = {
    "swagger-ui-bundle.js": (ASSETS, "text/javascript"),
    "swagger-ui.css": (ASSETS, "text/css"),
    "favicon.png": (ASSETS, "image/png"),
    "docs-init.js": (OWN, "text/javascript"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs-init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE.format(title="notifier"), headers=HEADERS)


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    if name not in FILES:
        raise HTTPException(404, "no such file")
    folder, media = FILES[name]
    return Response(
        (folder / name).read_bytes(),
        media_type=media,
        headers={**HEADERS, "Cache-Control": "public, max-age=86400"},
    )
