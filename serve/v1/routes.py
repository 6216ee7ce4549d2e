"""The model routes under ``/v1``. Checks run on the event loop; inference goes through the gate
(bounded pool + queue + deadline, see engine/gate.py), never straight to the default threadpool."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends

from lnrnn.bpc import LN2, bits_per_byte, nats_to_bits
from lnrnn.scorer import Scored
from lnrnn.serve.engine.decode import generate as sample_text
from lnrnn.serve.engine.decode import top_chars
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.errors import InvalidInput
from lnrnn.serve.http.deps import GateDep, MetricsDep, RuntimeDep, SettingsDep, require_json
from lnrnn.serve.http.limits import check_size, encode_text
from lnrnn.serve.http.schemas import ERRORS
from lnrnn.serve.v1 import compress as compress_routes
from lnrnn.serve.v1.schemas import (
    Candidate,
    GenerateRequest,
    GenerateResponse,
    ModelInfo,
    ModelList,
    PredictRequest,
    PredictResponse,
    ScoreBatchResponse,
    ScoreRequest,
    ScoreResult,
    ServerInfo,
)

router = APIRouter(prefix="/v1", tags=["model"], responses=ERRORS, dependencies=[Depends(require_json)])


def model_info(runtime: Runtime) -> ModelInfo:
    meta, cfg = runtime.meta, runtime.meta.config
    return ModelInfo(
        name=runtime.model_dir.resolve().name,
        cell=cfg.cell,
        norm=cfg.norm,
        layers=cfg.layers,
        hidden=cfg.hidden,
        embedding=cfg.embedding,
        parameters=cfg.parameters,
        vocab_size=cfg.vocab_size,
        valid_bpc=meta.valid_bpc,
        train_data=meta.train_data,
        version=meta.version,
        provider=runtime.provider,
        precision=runtime.precision,
        int8=runtime.int8,
        int8_bpc_delta=meta.int8_bpc_delta,  # only the int8 files carry it
        files=runtime.files,
    )


@router.get("/models", response_model=ModelList, summary="the loaded model and how the server runs it")
async def models(runtime: RuntimeDep, settings: SettingsDep) -> ModelList:
    server = ServerInfo(
        batch_streams=settings.batch_streams,
        batch_wait_ms=settings.batch_wait_ms,
        max_inflight=settings.inflight,
        max_queue=settings.max_queue,
        chunk_tokens=runtime.chunk_tokens,
        threads=settings.threads,
        max_sessions=settings.max_sessions,
        session_ttl_s=settings.session_ttl_s,
    )
    return ModelList(models=[model_info(runtime)], server=server)


@router.post("/predict", response_model=PredictResponse, summary="most likely next characters")
async def predict(
    req: PredictRequest, runtime: RuntimeDep, settings: SettingsDep, gate: GateDep
) -> PredictResponse:
    data = encode_text(req.text, settings)

    def work() -> list[tuple[str, float]]:
        last, state = runtime.context(data)
        return top_chars(runtime, last, state, req.top_k, req.temperature)

    return candidates_response(await gate.run(work))


def candidates_response(found: list[tuple[str, float]]) -> PredictResponse:
    """Candidates with their bits, and the probability left for everything not listed."""
    found = [(c, p) for c, p in found if p > 0]  # p underflows to 0 at tiny temperatures
    candidates = [Candidate(char=c, prob=p, bits=-float(np.log2(p))) for c, p in found]
    return PredictResponse(candidates=candidates, other=max(0.0, 1.0 - sum(p for _, p in found)))


def _result(text: str, data: bytes, scored: Scored) -> ScoreResult:
    bits = nats_to_bits(scored.nats)
    per_char_bits = None
    if scored.byte_nats is not None:
        starts = np.flatnonzero(
            (np.frombuffer(data, dtype=np.uint8) & 0xC0) != 0x80
        )  # first byte of each char
        per_char_bits = (np.add.reduceat(scored.byte_nats, starts) / LN2).tolist()
    return ScoreResult(
        bytes=len(data),
        chars=len(text),
        bits=bits,
        bits_per_byte=bits_per_byte(scored.nats, len(data)),
        bits_per_char=bits / len(text),
        per_char_bits=per_char_bits,
    )


@router.post(
    "/score",
    response_model=ScoreResult | ScoreBatchResponse,
    response_model_exclude_none=True,
    summary="bits of a text (or of a batch: {'texts': [...]} -> {'results': [...]})",
)
async def score(
    req: ScoreRequest, runtime: RuntimeDep, settings: SettingsDep, metrics: MetricsDep, gate: GateDep
) -> ScoreResult | ScoreBatchResponse:
    if req.text is not None:
        text, data = req.text, encode_text(req.text, settings)
        if req.adaptive:
            scored = Scored(len(data), (await compress_routes.adaptive_nats([data], runtime, gate))[0])
        else:
            scored = await gate.run(lambda: runtime.score(data, per_byte=req.per_char))
        result = _result(text, data, scored)
        metrics.bytes_scored.inc(len(data))
        return result
    texts = req.texts or []
    if len(texts) > settings.max_batch:
        raise InvalidInput(
            f"texts has {len(texts)} entries; the limit is {settings.max_batch} (LNRNN_MAX_BATCH): "
            "split the batch"
        )
    encoded = [t.encode("utf-8") for t in texts]
    check_size(sum(map(len, encoded)), settings, "the batch")

    if req.adaptive:
        nats = await compress_routes.adaptive_nats(encoded, runtime, gate)
        batch = [Scored(len(data), n) for data, n in zip(encoded, nats, strict=True)]
    else:
        batch = await gate.run(lambda: runtime.scorer.score_many(encoded, per_byte=req.per_char))
    metrics.bytes_scored.inc(sum(map(len, encoded)))
    return ScoreBatchResponse(results=[_result(*item) for item in zip(texts, encoded, batch, strict=True)])


@router.post("/generate", response_model=GenerateResponse, summary="sample a continuation")
async def generate(
    req: GenerateRequest, runtime: RuntimeDep, settings: SettingsDep, gate: GateDep
) -> GenerateResponse:
    if req.max_chars > settings.max_generate_chars:
        raise InvalidInput(
            f"max_chars is {req.max_chars}; the limit is {settings.max_generate_chars} "
            "(LNRNN_MAX_GENERATE_CHARS): ask for fewer characters"
        )
    data = encode_text(req.prompt, settings, "prompt")
    text = await gate.run(
        lambda: sample_text(runtime, data, req.max_chars, req.temperature, req.top_k, req.seed)
    )
    return GenerateResponse(text=text)
