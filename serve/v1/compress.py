"""``POST /v1/compress`` and ``POST /v1/decompress``: bytes in, bytes out, through ``lnrnn.codec``.

The codec runs its own single-thread CPU sessions of the step graph (never the batcher: the decoder must
repeat the encoder's exact step calls) in up to two lanes (two from 256 KiB on), so one large job already
keeps both cores busy: jobs run one at a time, inside the inference gate like every other model call
(queue limit, deadline, cancel).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from lnrnn.codec import (
    ChecksumMismatch,
    CodecError,
    ContainerError,
    ModelFileError,
    ModelMismatch,
    StepGraph,
    compress,
    decompress,
    information,
    registry,
    unpack,
)
from lnrnn.serve.config import Settings
from lnrnn.serve.engine.cancel import checkpoint
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.errors import ApiError, PayloadTooLarge, UnsupportedMediaType
from lnrnn.serve.http.deps import GateDep, RuntimeDep, SettingsDep
from lnrnn.serve.http.schemas import ErrorResponse

OCTET = "application/octet-stream"
CONTAINER_SLACK = 65536  # a container of incompressible bytes is a little longer than they are
T = TypeVar("T")


class InvalidContainer(ApiError):
    status, code = 422, "invalid_container"


class ModelConflict(ApiError):
    status, code = 409, "model_mismatch"


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (401, "LNRNN_API_KEY is set and the bearer token is missing or wrong"),
        (
            409,
            "model_mismatch: neither the served model nor a shipped one made the container (the message "
            "names the model when it is known)",
        ),
        (413, "the bytes (or the container's original length) are over LNRNN_MAX_TEXT_BYTES"),
        (415, "the body is not sent as application/octet-stream"),
        (
            422,
            "invalid_container: not an lnrnn container, truncated or corrupted; checksum_mismatch: the "
            "decoded bytes fail the CRC (another onnxruntime/numpy/CPU, or a corrupted payload)",
        ),
        (503, "model_not_ready or overloaded"),
        (504, "timeout: the job took longer than LNRNN_REQUEST_TIMEOUT_S"),
    )
}
BYTES_OUT: dict[int | str, dict[str, Any]] = {
    200: {"content": {OCTET: {"schema": {"type": "string", "format": "binary"}}}}
}
BYTES_IN = {
    "requestBody": {"required": True, "content": {OCTET: {"schema": {"type": "string", "format": "binary"}}}}
}
router = APIRouter(prefix="/v1", tags=["compression"], responses=ERRORS)
_ONE_JOB = threading.Lock()


@lru_cache(maxsize=4)
def _graph(model_dir: Path, precision: str) -> StepGraph:
    return StepGraph.load(model_dir, precision)


def step_graph(runtime: Runtime, precision: str | None = None) -> StepGraph:
    """The codec's step graph of the served model (loaded once per precision)."""
    return _graph(runtime.model_dir.resolve(), precision or runtime.precision)


def _api_error(err: CodecError) -> ApiError:
    if isinstance(err, ModelMismatch | ModelFileError):
        return ModelConflict(str(err))
    if isinstance(err, ChecksumMismatch):
        error = InvalidContainer(str(err))
        error.code = "checksum_mismatch"
        return error
    return InvalidContainer(str(err))


async def _run(gate: GateDep, job: Callable[[], T]) -> T:
    def serial() -> T:
        with _ONE_JOB:
            return job()

    try:
        return await gate.run(serial)
    except CodecError as err:
        raise _api_error(err) from None


async def _body(request: Request, limit: int) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != OCTET:
        shown = f"content-type {media!r}" if media else "no content-type"
        raise UnsupportedMediaType(f"{shown}: send the bytes with `Content-Type: {OCTET}`")
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(
            f"the body is {len(body)} bytes; the limit is {limit} (LNRNN_MAX_TEXT_BYTES): send less"
        )
    return body


@router.post(
    "/compress",
    response_class=Response,
    responses=BYTES_OUT,
    openapi_extra=BYTES_IN,
    summary="compress bytes with the model (range coding + adaptive mixing); the result is a container",
)
async def compress_bytes(
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    gate: GateDep,
    neural_only: bool = Query(False, description="code with the network alone (no adaptive mixing)"),
    archive_format: int = Query(
        2,
        alias="format",
        ge=1,
        le=2,
        description="2 (default): probabilities from integers only, derived from the fp32 step.onnx (decodes "
        "anywhere); 1: float probabilities from ONNX Runtime (decodes only with the same onnxruntime, numpy "
        "and kind of CPU)",
    ),
) -> Response:
    data = await _body(request, settings.max_text_bytes)
    # format 2 is derived from the fp32 step graph whatever precision the server runs
    precision = "fp32" if archive_format == 2 else None

    def job() -> bytes:
        graph = step_graph(runtime, precision)
        coded = compress(data, graph, adaptive=not neural_only, checkpoint=checkpoint, version=archive_format)
        return coded.blob

    return Response(await _run(gate, job), media_type=OCTET)


@router.post(
    "/decompress",
    response_class=Response,
    responses=BYTES_OUT,
    openapi_extra=BYTES_IN,
    summary="restore the bytes of a container made by /v1/compress or `lnrnn compress` (the served model or "
    "a shipped one, found by the container's fingerprint)",
)
async def decompress_bytes(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, gate: GateDep
) -> Response:
    blob = await _body(request, settings.max_text_bytes + CONTAINER_SLACK)
    try:
        header, _ = unpack(blob)  # a malformed container fails here, before any model work
    except ContainerError as err:
        raise InvalidContainer(str(err)) from None
    _check_length(header.length, settings)

    def job() -> bytes:
        # the served model, else any shipped model with the fingerprint the header names (hashing the
        # candidates takes a while the first time, so it runs here, in the job, not in the event loop)
        model_dir = registry.require(header, first=[runtime.model_dir])
        return decompress(blob, _graph(model_dir.resolve(), header.precision), checkpoint=checkpoint)

    data = await _run(gate, job)
    return Response(data, media_type=OCTET)


def _check_length(n: int, settings: Settings) -> None:
    if n > settings.max_text_bytes:
        raise PayloadTooLarge(
            f"the container holds {n} bytes; the limit is {settings.max_text_bytes} (LNRNN_MAX_TEXT_BYTES): "
            "decompress it with `lnrnn decompress`"
        )


async def adaptive_nats(texts: list[bytes], runtime: Runtime, gate: GateDep) -> list[float]:
    """/v1/score with ``adaptive``: the information content /v1/compress codes each text to, in nats."""
    return await _run(
        gate, lambda: [information(data, step_graph(runtime), checkpoint=checkpoint) for data in texts]
    )
