"""The page at ``GET /`` and its files from this folder (no build step, nothing fetched from outside). The
numbers its heat map shows come from ``POST /v1/surprisal`` (v1/surprisal.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

PAGE_DIR = Path(__file__).parent  # index.html, page.js and page.css beside this module
ASSETS = {  # the only files served: a fixed map, so no path from the URL ever reaches the file system
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}
# Everything from this origin only: the page works offline and nothing it shows can load a third party.
# Colours are set through the CSSOM (element.style), which style-src does not restrict.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    return HTMLResponse((PAGE_DIR / "index.html").read_bytes(), headers=HEADERS)


@router.get("/page/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise StarletteHTTPException(404)  # the JSON error handler words it like every other 404
    return Response((PAGE_DIR / name).read_bytes(), media_type=media_type, headers=HEADERS)
