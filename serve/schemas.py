"""Request and response bodies (pydantic v2). Unknown request fields are rejected (``extra="forbid"``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

MAX_TOP_K = 100
MAX_TEMPERATURE = 100.0


def _utf8(text: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"); they are not Unicode text and cannot be scored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(text[err.start]):04X}) at character {err.start}; "
            "send valid Unicode (pair surrogates or remove them)"
        ) from None
    return text


def _json_number(value: object) -> object:
    """A JSON number only: pydantic's lax float would take ``true`` and ``"1.5"`` as well."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"Input should be a number, got {type(value).__name__}")
    return value


Utf8Str = Annotated[str, AfterValidator(_utf8)]
Number = Annotated[float, BeforeValidator(_json_number)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictRequest(Request):
    text: Utf8Str = Field("", description="context; empty = predict the first character of a text")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, strict=True, description="how many characters to list")
    temperature: Number = Field(
        1.0, gt=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="divides the log-probabilities"
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "The quick brown f", "top_k": 5}]}
    )


class Candidate(BaseModel):
    char: str = Field(description="one Unicode character (its UTF-8 bytes may be several)")
    prob: float = Field(description="joint probability of the character's bytes")
    bits: float = Field(description="-log2(prob)")


class PredictResponse(BaseModel):
    candidates: list[Candidate]
    other: float = Field(description="probability of everything not listed (other characters, invalid bytes)")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "candidates": [
                        {"char": "o", "prob": 0.91, "bits": 0.136},
                        {"char": "a", "prob": 0.04, "bits": 4.64},
                    ],
                    "other": 0.05,
                }
            ]
        }
    )


class ScoreRequest(Request):
    """Either ``text`` (one result) or ``texts`` (a batch: ``{"results": [...]}`` in the same order)."""

    text: str | None = Field(None, description="the text to score (at least one character)")
    texts: list[str] | None = Field(None, min_length=1, description="several texts, answered in order")
    per_char: bool = Field(False, strict=True, description="also return the bits of each Unicode character")
    adaptive: bool = Field(
        False,
        strict=True,
        description="score with the model /v1/compress codes with (network + online context mixing): the "
        "bits are the compressed size minus the container's overhead",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "Hello, world!"}, {"texts": ["first text", "second"], "per_char": False}]
        },
    )

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str | None) -> str | None:
        if text == "":
            raise ValueError("empty; send at least one character to score")
        return None if text is None else _utf8(text)

    @field_validator("texts")
    @classmethod
    def _check_texts(cls, texts: list[str] | None) -> list[str] | None:
        if texts is None:
            return None
        for i, text in enumerate(texts):
            if not text:
                raise ValueError(f"texts[{i}] is empty; every text needs at least one character")
            try:
                _utf8(text)
            except ValueError as err:
                raise ValueError(f"texts[{i}] {err}") from None
        return texts

    @model_validator(mode="after")
    def _one_of(self) -> ScoreRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError('send exactly one of "text" (a string) or "texts" (a list of strings)')
        if self.adaptive and self.per_char:
            raise ValueError("per_char is not available with adaptive: send one of them")
        return self


class ScoreResult(BaseModel):
    bytes: int = Field(description="UTF-8 bytes scored")
    chars: int = Field(description="Unicode characters scored")
    bits: float = Field(description="total information content, -log2 p(text)")
    bits_per_byte: float
    bits_per_char: float
    per_char_bits: list[float] | None = Field(None, description="with per_char: bits of each character")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"bytes": 13, "chars": 13, "bits": 41.6, "bits_per_byte": 3.2, "bits_per_char": 3.2}]
        }
    )


class ScoreBatchResponse(BaseModel):
    results: list[ScoreResult] = Field(description="one result per input text, in order")


class GenerateRequest(Request):
    prompt: Utf8Str = Field("", description="text to continue; empty = start a new text")
    max_chars: int = Field(
        200, ge=1, strict=True, description="characters to generate (limit: LNRNN_MAX_GENERATE_CHARS)"
    )
    temperature: Number = Field(1.0, gt=0, le=MAX_TEMPERATURE, allow_inf_nan=False)
    top_k: int = Field(
        0, ge=0, le=256, strict=True, description="sample among the k most likely next bytes; 0 = all"
    )
    seed: int | None = Field(None, ge=0, lt=2**63, strict=True, description="same seed, same text")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"prompt": "Once upon a time", "max_chars": 80, "seed": 1}]},
    )


class GenerateResponse(BaseModel):
    text: str = Field(description="the generated characters (without the prompt); always valid UTF-8")


class ModelInfo(BaseModel):
    name: str
    cell: str
    norm: str
    layers: int
    hidden: int
    embedding: int
    parameters: int
    vocab_size: int
    valid_bpc: float | None
    train_data: str
    version: str
    provider: str = Field(description="ONNX Runtime execution provider actually in use")
    precision: str = Field(description="fp32 or int8: which pair of files is loaded (LNRNN_PRECISION)")
    int8: bool = Field(description="precision == int8")
    int8_bpc_delta: float | None = Field(
        description="int8 only: validation BPC(int8) - BPC(fp32) recorded by the export (null for fp32)"
    )
    files: dict[str, int] = Field(description="ONNX file sizes in bytes")


class ServerInfo(BaseModel):
    """How this server runs its model (the LNRNN_* settings in force)."""

    batch_streams: int = Field(
        description="most streams per shared graph call (LNRNN_BATCH_STREAMS; 1 = off)"
    )
    batch_wait_ms: float = Field(
        description="how long an idle batcher waits to fill a call (LNRNN_BATCH_WAIT_MS)"
    )
    max_inflight: int = Field(description="requests served at once (LNRNN_MAX_INFLIGHT or its default)")
    max_queue: int = Field(description="requests waiting for a slot before 503 (LNRNN_MAX_QUEUE)")
    chunk_tokens: int = Field(description="tokens per graph call for long texts (LNRNN_CHUNK_TOKENS)")
    threads: int = Field(description="ONNX Runtime intra-op threads per call (LNRNN_THREADS; 0 = per core)")
    max_sessions: int = Field(description="server-held sessions at most (LNRNN_MAX_SESSIONS)")
    session_ttl_s: float = Field(description="idle seconds before a session is deleted (LNRNN_SESSION_TTL_S)")


class ModelList(BaseModel):
    models: list[ModelInfo]
    server: ServerInfo


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. invalid_request, payload_too_large")
    message: str = Field(description="what went wrong and what to change")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    provider: str | None = None
