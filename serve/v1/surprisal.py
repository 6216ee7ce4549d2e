"""``POST /v1/surprisal``: the per-character bits and alternatives that the page's heat map shows, with the
sizes of the same bytes through gzip, bzip2 and xz."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from lnrnn.bpc import LN2
from lnrnn.compressors import compressed_sizes
from lnrnn.scorer import document_array
from lnrnn.serve.engine.decode import top_chars
from lnrnn.serve.engine.runtime import Runtime
from lnrnn.serve.errors import PayloadTooLarge
from lnrnn.serve.http.deps import GateDep, MetricsDep, RuntimeDep, SettingsDep, require_json
from lnrnn.serve.http.schemas import ERRORS, Request, Utf8Str

# One T = 1 graph call per byte (the distribution before every byte is needed, the sequence graph only
# gives the last one): ~0.3-0.5 ms a byte on the default model, so 4 KiB stays around two seconds.
SURPRISAL_MAX_BYTES = 4096
MAX_ALTERNATIVES = 10

router = APIRouter(prefix="/v1", tags=["model"], responses=ERRORS, dependencies=[Depends(require_json)])


class SurprisalRequest(Request):
    text: Utf8Str = Field(min_length=1, description=f"the text, at most {SURPRISAL_MAX_BYTES} UTF-8 bytes")
    top_k: int = Field(
        3, ge=0, le=MAX_ALTERNATIVES, strict=True, description="alternatives listed per character"
    )


class Alternative(BaseModel):
    char: str
    prob: float


class CharSurprisal(BaseModel):
    char: str
    bits: float = Field(description="-log2 p(char | text before it): the sum over its UTF-8 bytes")
    alternatives: list[Alternative] = Field(
        description="the most likely characters at this position, best first"
    )


class CompressorSize(BaseModel):
    bytes: int
    bits_per_byte: float


class SurprisalResponse(BaseModel):
    bytes: int
    chars: int
    bits: float
    bits_per_byte: float
    characters: list[CharSurprisal]
    compressors: dict[str, CompressorSize] = Field(description="the same bytes through gzip, bzip2 and xz")


def surprisal(runtime: Runtime, text: str, data: bytes, top_k: int) -> list[CharSurprisal]:
    """Bits and alternatives per character, feeding [BOS, bytes...] one token at a time.

    The scorer gives the same numbers whatever the chunking, so the bits equal /v1/score's per_char_bits.
    """
    scorer = runtime.scorer
    tokens = document_array(data)
    last, state = scorer.next(tokens[:1], scorer.start_state(1))
    out: list[CharSurprisal] = []
    pos = 0
    for char in text:
        width = len(char.encode("utf-8"))
        alternatives = top_chars(runtime, last[0], state, top_k) if top_k else []
        nats = 0.0
        for token in tokens[1 + pos : 1 + pos + width]:
            nats -= float(last[0, token])
            pos += 1
            if pos < len(data):  # the distribution after the last byte is not needed
                last, state = scorer.next(np.array([token], dtype=np.int64), state)
        alts = [Alternative(char=c, prob=p) for c, p in alternatives]
        out.append(CharSurprisal(char=char, bits=nats / LN2, alternatives=alts))
    return out


@router.post(
    "/surprisal",
    response_model=SurprisalResponse,
    summary="bits and top alternatives per character, with gzip/bzip2/xz sizes (the page's heat map)",
)
async def surprisal_route(
    req: SurprisalRequest, runtime: RuntimeDep, settings: SettingsDep, metrics: MetricsDep, gate: GateDep
) -> SurprisalResponse:
    data = req.text.encode("utf-8")
    limit = min(SURPRISAL_MAX_BYTES, settings.max_text_bytes)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"text is {len(data)} UTF-8 bytes; /v1/surprisal takes at most {limit} (one model call per "
            "byte): send a shorter text, or use /v1/score with per_char for the bits only"
        )

    def work() -> tuple[list[CharSurprisal], dict[str, int]]:
        # xz -9e takes ~0.1 s even on 4 KiB: off the event loop, with the model work
        return surprisal(runtime, req.text, data, req.top_k), compressed_sizes(data)

    characters, sizes = await gate.run(work)
    metrics.bytes_scored.inc(len(data))
    bits = sum(c.bits for c in characters)
    return SurprisalResponse(
        bytes=len(data),
        chars=len(req.text),
        bits=bits,
        bits_per_byte=bits / len(data),
        characters=characters,
        compressors={
            name: CompressorSize(bytes=size, bits_per_byte=8 * size / len(data))
            for name, size in sizes.items()
        },
    )
