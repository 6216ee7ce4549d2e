"""The page at ``GET /`` and its files from this folder (no build step, nothing fetched from outside), and
what its device mode downloads: the manifest (``GET /v1/device``), the model file and ONNX Runtime Web's.

In server mode the heat map's numbers come from ``POST /v1/surprisal`` (v1/surprisal.py) and the suggestions
from a server-held session. In device mode (lnrnn.js) the browser runs the model itself: the manifest names
the sequence graph of the precision the device runs (weight-only int8 when the model directory has it, else
fp32) and the runtime's two files. Every file is served from a fixed table built once from the model
directory and the runtime directory, never from a path in the URL, under a URL that holds its content hash,
so it is cached for a year (``immutable``); a gzip (and, for the runtime, brotli) copy is sent when the
browser accepts it. The manifest and the model are under ``/v1``: with ``LNRNN_API_KEY`` they need the key
like the rest of the model's API; the page, its service worker and the runtime (public npm files) do not.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from lnrnn.contract import BOS_ID, PRECISION_FILES, SEQUENCE_GRAPH, VOCAB_SIZE
from lnrnn.serve.engine.runtime import Runtime, has_files
from lnrnn.serve.http.deps import RuntimeDep, SettingsDep
from lnrnn.serve.http.schemas import MAX_TOP_K

PAGE_DIR = Path(__file__).parent  # index.html, page.js, page.css, lnrnn.js and sw.js beside this module
# `npm ci` (package.json "postinstall": runtime.mjs) lays the runtime out here in a source tree
SOURCE_WEB_DIR = PAGE_DIR.parents[1] / "node_modules" / ".lnrnn-web"
RUNTIME_MANIFEST = "runtime.json"
ASSETS = {  # the only page files served: a fixed map, so no path from the URL ever reaches the file system
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "lnrnn.js": "text/javascript; charset=utf-8",
    "complete.js": "text/javascript; charset=utf-8",  # completions on the device, on top of lnrnn.js
}
MEDIA_TYPES = {
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}
DEVICE_PRECISION = "int8w"  # what the device runs when the model directory has it (else fp32)
# Everything from this origin only: the page works offline and nothing it shows can load a third party.
# 'wasm-unsafe-eval' lets the page compile ONNX Runtime's WebAssembly (same origin; no JS eval).
# Colours are set through the CSSOM (element.style), which style-src does not restrict.
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
IMMUTABLE = "public, max-age=31536000, immutable"
HASH_CHARS = 16  # of the sha256 in a file's URL

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> Response:
    return small(request, (PAGE_DIR / "index.html").read_bytes(), "text/html; charset=utf-8", HEADERS)


@router.get("/page/{name}")
async def asset(name: str, request: Request) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise StarletteHTTPException(404)  # the JSON error handler words it like every other 404
    return small(request, (PAGE_DIR / name).read_bytes(), media_type, HEADERS)


@router.get("/sw.js")
async def service_worker(request: Request) -> Response:
    """The service worker that keeps the page, the runtime and the model for offline use (scope ``/``)."""
    headers = HEADERS | {"Service-Worker-Allowed": "/"}
    return small(request, (PAGE_DIR / "sw.js").read_bytes(), ASSETS["lnrnn.js"], headers)


def small(request: Request, body: bytes, media_type: str, headers: dict[str, str]) -> Response:
    """A page file or the manifest: revalidated on every use (``no-cache``) against its ETag, so an unchanged
    one costs a 304, and gzipped when the browser accepts it."""
    gzipped = "gzip" in accepted_encodings(request.headers.get("accept-encoding", "")) and len(body) > 1024
    tag = hashlib.sha256(body).hexdigest()[:HASH_CHARS]
    etag = f'"{tag}-gzip"' if gzipped else f'"{tag}"'
    headers = headers | {"ETag": etag, "Vary": "Accept-Encoding"}
    if etag in if_none_match(request):
        return Response(status_code=304, headers=headers)
    if gzipped:
        body = gzip.compress(body, compresslevel=6, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=media_type, headers=headers)


def if_none_match(request: Request) -> list[str]:
    """The entity tags of an ``If-None-Match`` header (weak ones compared as strong: same bytes here)."""
    return [tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")]


# --- device mode ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """One file served under ``<prefix>/<digest>/<name>``, with its compressed copies."""

    name: str
    path: Path
    size: int
    digest: str  # the first HASH_CHARS hex digits of its sha256
    sha256: str
    encodings: dict[str, Path | bytes] = field(default_factory=dict)  # "br" / "gzip" -> file or bytes

    def url(self, prefix: str) -> str:
        return f"{prefix}/{self.digest}/{self.name}"

    def sizes(self) -> dict[str, int]:
        """bytes, and gzip_bytes / br_bytes for the copies there are."""
        out = {"bytes": self.size}
        for encoding, body in self.encodings.items():
            out[f"{encoding}_bytes"] = len(body) if isinstance(body, bytes) else body.stat().st_size
        return out


@dataclass(frozen=True)
class DeviceFiles:
    """What device mode can download, found once per app: the model file and the runtime's files."""

    precision: str
    model: Served
    runtime: dict[str, Served]  # role ("module", "wasm") -> file; empty when the runtime is missing
    runtime_version: str
    runtime_missing: str  # why there is no runtime ("" when there is one)


def served(path: Path, compressed: dict[str, Path] | None = None) -> Served:
    """``path`` with its hash; a gzip copy is made here (once) unless one is given beside it."""
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    encodings: dict[str, Path | bytes] = dict(compressed or {})
    if "gzip" not in encodings:
        encodings["gzip"] = gzip.compress(data, compresslevel=9, mtime=0)
    return Served(path.name, path, len(data), sha[:HASH_CHARS], sha, encodings)


def find_runtime(web_dir: Path) -> tuple[dict[str, Served], str, str]:
    """The runtime files named by ``web_dir/runtime.json`` (written by runtime.mjs), its version, and why
    there are none ("" when found)."""
    index = web_dir / RUNTIME_MANIFEST
    if not index.is_file():
        return {}, "", f"no {index}: run `npm ci` in the source tree (or set LNRNN_WEB_DIR)"
    try:
        listed = json.loads(index.read_text(encoding="utf-8"))
        names = {role: str(entry["name"]) for role, entry in listed["files"].items()}
        version = str(listed["version"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return {}, "", f"{index} is not a runtime list written by serve/page/runtime.mjs ({err})"
    files = {}
    for role, name in names.items():
        path = web_dir / name
        if Path(name).name != name or path.suffix not in MEDIA_TYPES or not path.is_file():
            return {}, "", f"{index} names {name!r}, which is not a runtime file in {web_dir}"
        copies = {enc: web_dir / f"{name}.{ext}" for enc, ext in (("br", "br"), ("gzip", "gz"))}
        files[role] = served(path, {enc: p for enc, p in copies.items() if p.is_file()})
    if set(files) != {"module", "wasm"}:
        return {}, "", f"{index} must name a module and a wasm file, names {sorted(files)}"
    return files, version, ""


def device_files(model_dir: Path, web_dir: Path) -> DeviceFiles:
    precision = DEVICE_PRECISION if has_files(model_dir, DEVICE_PRECISION) else "fp32"
    model = served(model_dir / PRECISION_FILES[precision][1])  # the sequence graph: Scorer.next's graph
    runtime, version, missing = find_runtime(web_dir)
    return DeviceFiles(precision, model, runtime, version, missing)


async def files_of(request: Request, runtime: Runtime, web_dir: Path | None) -> DeviceFiles:
    """The app's table, built on first use (hashing and gzip take a moment: off the event loop)."""
    state = request.app.state
    cached: DeviceFiles | None = getattr(state, "device_files", None)
    if cached is None:
        lock = getattr(state, "device_lock", None) or asyncio.Lock()
        state.device_lock = lock
        async with lock:
            cached = getattr(state, "device_files", None)
            if cached is None:
                cached = await asyncio.to_thread(device_files, runtime.model_dir, web_dir or SOURCE_WEB_DIR)
                state.device_files = cached
    return cached


@router.get("/v1/device")
async def device_manifest(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> Response:
    """What lnrnn.js needs to run the model on the device: files, sizes, the contract's names and numbers."""
    files = await files_of(request, runtime, settings.web_dir)
    meta = runtime.meta
    model: dict[str, Any] = {
        "name": runtime.model_dir.resolve().name,
        "precision": files.precision,
        "file": files.model.name,
        "url": files.model.url("v1/device"),
        "sha256": files.model.sha256,
        **files.model.sizes(),
        "inputs": list(SEQUENCE_GRAPH.input_names),
        "outputs": list(SEQUENCE_GRAPH.output_names),
        "config": asdict(meta.config),
        "state_size": meta.config.state_size,
        "vocab_size": VOCAB_SIZE,
        "bos_id": BOS_ID,
        "initial_state": meta.initial_state,
        "valid_bpc": meta.valid_bpc,
        "chunk_tokens": runtime.chunk_tokens,
        "max_top_k": MAX_TOP_K,
    }
    runtime_info = None
    if files.runtime:
        runtime_info = {
            "package": "onnxruntime-web",
            "version": files.runtime_version,
            "threads": 1,
            **{role: {"url": f.url("page/ort"), **f.sizes()} for role, f in files.runtime.items()},
        }
    body = {
        "format": 1,
        "model": model,
        "runtime": runtime_info,
        "runtime_missing": files.runtime_missing,
        "server": {"precision": runtime.precision, "same_numbers": runtime.precision == files.precision},
    }
    data = json.dumps(body, separators=(",", ":")).encode()
    return small(request, data, "application/json", {"Cache-Control": "no-cache"})


@router.api_route("/v1/device/{digest}/{name}", methods=["GET", "HEAD"])
async def device_model(
    digest: str, name: str, request: Request, runtime: RuntimeDep, settings: SettingsDep
) -> Response:
    files = await files_of(request, runtime, settings.web_dir)
    return send(request, files.model if (digest, name) == (files.model.digest, files.model.name) else None)


@router.api_route("/page/ort/{digest}/{name}", methods=["GET", "HEAD"])
async def device_runtime(
    digest: str, name: str, request: Request, runtime: RuntimeDep, settings: SettingsDep
) -> Response:
    files = await files_of(request, runtime, settings.web_dir)
    found = [f for f in files.runtime.values() if (f.digest, f.name) == (digest, name)]
    return send(request, found[0] if found else None)


def accepted_encodings(header: str) -> set[str]:
    """Content codings an ``Accept-Encoding`` header accepts (q > 0), lower case."""
    out = set()
    for part in header.split(","):
        coding, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding.strip() and q > 0:
            out.add(coding.strip().lower())
    return out


def send(request: Request, file: Served | None) -> Response:
    """``file`` (404 if None) in the best coding the client accepts, cached for a year, with its ETag."""
    if file is None:
        raise StarletteHTTPException(404)
    accepts = accepted_encodings(request.headers.get("accept-encoding", ""))
    encoding = next(
        (e for e in ("br", "gzip") if e in file.encodings and (e in accepts or "*" in accepts)), ""
    )
    etag = f'"{file.digest}{"-" + encoding if encoding else ""}"'
    headers = {
        "ETag": etag,
        "Cache-Control": IMMUTABLE,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    wanted = if_none_match(request)
    if etag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    if encoding:
        headers["Content-Encoding"] = encoding
    media_type = MEDIA_TYPES[file.path.suffix]
    body = file.encodings[encoding] if encoding else file.path
    if isinstance(body, bytes):
        return Response(body, media_type=media_type, headers=headers)
    return FileResponse(body, media_type=media_type, headers=headers)
