"""KServe / Open Inference Protocol v2 REST beside ``/v1``: same app, same API key, limits and gate.

Standard clients (``tritonclient.http``, the ``kserve`` REST client) talk to these routes unchanged. The
body of ``infer`` is read raw: it may be JSON followed by binary tensor data and tritonclient sends no
Content-Type. Errors are ``{"error": "<message>"}`` with a 4xx/5xx status (http/handlers.py renders every
error under ``/v2`` that way, middleware ones included).
"""

from __future__ import annotations

import zlib
from enum import Enum
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lnrnn import __version__
from lnrnn.serve.errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from lnrnn.serve.http.deps import GateDep, MetricsDep, RuntimeDep, SettingsDep, StoreDep
from lnrnn.serve.v2.models import MODELS, TEXT_MODEL, VERSION, infer_step, infer_text, metadata
from lnrnn.serve.v2.tensors import HEADER_LENGTH, encode_response, parse_request

EXTENSIONS = ["binary_tensor_data", "sequence", "sequence(string_id)"]  # only what is implemented
TAGS: list[str | Enum] = ["v2 (Open Inference Protocol)"]


class V2Error(BaseModel):
    error: str = Field(description="what is wrong and what to change")


V2_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": V2Error, "description": description}
    for status, description in (
        (400, "the request is not a valid v2 inference request (the message says which part)"),
        (401, "LNRNN_API_KEY is set and the bearer token is missing or wrong"),
        (404, "no such model, version, output or open sequence"),
        (405, "wrong method for this route"),
        (413, "texts or body over the configured limit"),
        (415, "unsupported Content-Encoding"),
        (422, "a path or query parameter is malformed"),
        (429, "every session slot (LNRNN_MAX_SESSIONS) is busy"),
        (503, "the model is not loaded, or every slot and the queue are busy"),
        (504, "the request took longer than LNRNN_REQUEST_TIMEOUT_S"),
    )
}
_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "datatype": {"type": "string", "enum": ["BYTES", "INT64", "INT32", "FP32", "FP64", "BOOL"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 8},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
# The body is read raw (JSON, or JSON + binary tensors), so its schema is documented by hand.
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "JSON; with binary tensor data, the JSON header (length in "
        "Inference-Header-Content-Length) followed by the raw tensors",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            },
                        },
                    },
                }
            }
        },
    }
}
router = APIRouter(prefix="/v2", tags=TAGS, responses=V2_ERRORS)
health_router = APIRouter(prefix="/v2/health", tags=TAGS, responses=V2_ERRORS)


@health_router.get("/live", summary="the process is up")
async def live() -> dict[str, bool]:
    return {"live": True}


@health_router.get("/ready", summary="the model is loaded (503 otherwise)")
async def ready(request: Request) -> JSONResponse:
    if getattr(request.app.state, "runtime", None) is None:
        reason = getattr(request.app.state, "load_error", None) or "the model is still loading"
        return JSONResponse({"live": True, "ready": False, "error": f"model not loaded: {reason}"}, 503)
    return JSONResponse({"live": True, "ready": True})


@router.get("", summary="server metadata: name, version, extensions")
async def server_metadata() -> dict[str, Any]:
    return {"name": "lnrnn", "version": __version__, "extensions": EXTENSIONS}


def _model(name: str, version: str | None) -> str:
    if name not in MODELS:
        raise NotFound(f"unknown model {name!r}; this server has {', '.join(MODELS)}")
    if version is not None and version != VERSION:
        raise NotFound(f"model {name!r} has no version {version!r}; it has version {VERSION}")
    return name


@router.get("/models/{name}", summary="model metadata: inputs and outputs")
@router.get("/models/{name}/versions/{version}", summary="model metadata of a version")
async def model_metadata(name: str, runtime: RuntimeDep, version: str | None = None) -> dict[str, Any]:
    return metadata(_model(name, version), runtime)


@router.get("/models/{name}/ready", summary="the model can serve (503 otherwise)")
@router.get("/models/{name}/versions/{version}/ready", summary="the model version can serve")
async def model_ready(name: str, request: Request, version: str | None = None) -> JSONResponse:
    name = _model(name, version)
    is_ready = getattr(request.app.state, "runtime", None) is not None
    return JSONResponse({"name": name, "ready": is_ready}, status_code=200 if is_ready else 503)


@router.post(
    "/models/{name}/infer", summary="inference (JSON or binary tensor data)", openapi_extra=INFER_BODY
)
@router.post(
    "/models/{name}/versions/{version}/infer", summary="inference on a version", openapi_extra=INFER_BODY
)
async def infer(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    gate: GateDep,
    metrics: MetricsDep,
    store: StoreDep,
    version: str | None = None,
) -> Response:
    name = _model(name, version)
    body = _decoded(await request.body(), request.headers.get("content-encoding", ""), settings.body_limit)
    req = parse_request(body, request.headers.get(HEADER_LENGTH))
    if name == TEXT_MODEL:
        outputs = await infer_text(req, runtime, settings, gate, store)
        metrics.bytes_scored.inc(sum(map(len, req.inputs["text"].data)))
    else:
        outputs = await infer_step(req, runtime, gate)
    if req.requested is not None:
        names = {t.name for t in outputs}
        missing = [n for n in req.requested if n not in names]
        if missing:
            hint = " (top_chars/top_probs need the parameter top_k)" if name == TEXT_MODEL else ""
            raise NotFound(f"model {name!r} has no output {missing}{hint}; see GET /v2/models/{name}")
        outputs = [t for t in outputs if t.name in req.requested]
    for t in outputs:
        t.binary = req.wants_binary(t.name)
    content, header_length = encode_response(name, VERSION, req.id, outputs)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    """The body after ``Content-Encoding`` gzip/deflate (tritonclient's request compression), capped."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none"
        )
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as err:
        raise UnsupportedMediaType(f"the body is not valid {encoding} data: {err}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"the decompressed body is over the {limit}-byte limit; send less text")
    return out
