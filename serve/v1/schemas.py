"""Request and response bodies of the /v1 routes and its sessions (pydantic v2; unknown request fields are
rejected)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lnrnn.serve.http.schemas import MAX_TEMPERATURE, MAX_TOP_K, Number, Request, Utf8Str, check_utf8


# How many next characters to list and at what temperature: /v1/predict and the session routes. A comment, not
# a docstring: pydantic would give the subclasses' OpenAPI schemas this text as their description.
class CandidateOptions(Request):
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, strict=True, description="how many characters to list")
    temperature: Number = Field(
        1.0, gt=0, le=MAX_TEMPERATURE, allow_inf_nan=False, description="divides the log-probabilities"
    )


class PredictRequest(CandidateOptions):
    text: Utf8Str = Field("", description="context; empty = predict the first character of a text")

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
        return None if text is None else check_utf8(text)

    @field_validator("texts")
    @classmethod
    def _check_texts(cls, texts: list[str] | None) -> list[str] | None:
        if texts is None:
            return None
        for i, text in enumerate(texts):
            if not text:
                raise ValueError(f"texts[{i}] is empty; every text needs at least one character")
            try:
                check_utf8(text)
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
    precision: str = Field(
        description="fp32, int8, int8w or int4: which pair of files is loaded (LNRNN_PRECISION)"
    )
    int8: bool = Field(description="precision == int8")
    int8_bpc_delta: float | None = Field(
        description="int8, int8w and int4: validation BPC(that file) - BPC(fp32) recorded by the export "
        "(null for fp32)"
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


class SessionRequest(CandidateOptions):
    text: Utf8Str = Field("", description="text to score and remember (create: the start of a document)")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "To be, or not to b", "top_k": 5}]}
    )


class SessionCreated(BaseModel):
    session_id: str = Field(description="128 random bits, URL-safe base64: keep it secret")
    bytes: int = Field(description="UTF-8 bytes of the text")
    bits: float = Field(description="-log2 p(text) as the start of a document: every byte is paid")
    candidates: list[Candidate] = Field(description="most likely next characters after the text")
    other: float = Field(description="probability of everything not listed")
    expires_in_s: float = Field(description="the session is deleted after this long without a call")


class SessionAppended(BaseModel):
    bytes: int = Field(description="UTF-8 bytes appended")
    bits: float = Field(description="bits of the appended text, given everything before it")
    total_bytes: int
    total_bits: float
    candidates: list[Candidate]
    other: float
    expires_in_s: float


class SessionInfo(BaseModel):
    session_id: str
    total_bytes: int
    total_bits: float
    bits_per_byte: float | None = Field(description="total_bits / total_bytes; null for an empty text")
    age_s: float = Field(description="seconds since the session was created")
    idle_s: float = Field(description="seconds since its last call")
    expires_in_s: float
