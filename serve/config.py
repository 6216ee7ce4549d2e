"""Serving settings: environment variables with the ``LNRNN_`` prefix (pydantic-settings)."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "int8", "int8w", "int4"]


def shipped_model(name: str = "default") -> Path:
    """A model that ships with the package: ``models/<name>/`` in the repository, package data in the wheel,
    so the commands find it from any directory."""
    return Path(str(resources.files("lnrnn.models"))) / name


DEFAULT_MODEL_DIR = shipped_model()


class Settings(BaseSettings):
    """Every field can be set as ``LNRNN_<NAME>`` (e.g. ``LNRNN_MODEL_DIR=/models/x``)."""

    model_config = SettingsConfigDict(env_prefix="LNRNN_", env_ignore_empty=True, extra="ignore", frozen=True)

    model_dir: Path = Field(
        DEFAULT_MODEL_DIR,
        description="directory with step.onnx and sequence.onnx, or a shipped model's name (default, "
        "ladder-1m, ladder-256k; broad in a checkout)",
    )
    device: Device = Field("auto", description="auto: CUDA if really active, else CPU; cuda: fail without it")
    threads: int = Field(1, ge=0, le=256, description="ORT intra-op threads per session; 0 = one per core")
    precision: Precision = Field(
        "auto",
        description="auto: the int8 files on CPU when the export kept them (BPC delta <= 0.01), else fp32; "
        "int8w: weight-only int8, the numbers the page computes on the device; int4: 4-bit weights, fp32 "
        "activations (the smallest files)",
    )
    web_dir: Path | None = Field(
        None,
        description="ONNX Runtime Web files for the page's device mode (written by `npm ci`); default: "
        "node_modules/.lnrnn-web in the source tree. Without them the page runs on the server only",
    )
    max_text_bytes: int = Field(1_000_000, ge=1, description="largest text (UTF-8 bytes) per request")
    max_body_bytes: int = Field(0, ge=0, description="largest request body; 0 = 6 x max_text_bytes + 64 KiB")
    max_batch: int = Field(32, ge=1, le=1024, description="most texts in one /v1/score batch")
    max_generate_chars: int = Field(2000, ge=1, description="largest max_chars for /v1/generate")
    chunk_tokens: int = Field(
        512,  # runtime.CHUNK_TOKENS: why this size is measured there
        ge=2,
        description="tokens per sequence-graph call when scoring long texts: memory per call grows with it",
    )
    cache_size: int = Field(256, ge=0, description="contexts whose state /v1/predict remembers; 0 = off")
    max_sessions: int = Field(
        1000,
        ge=1,
        description="server-held sessions at most; a new one evicts the least recently used idle one "
        "(429 when every one is busy). Each holds the state, L x S floats, and 257 log-probs",
    )
    session_ttl_s: float = Field(600.0, gt=0, description="a session idle this long is deleted (404 after)")
    host: str = Field("127.0.0.1", description="bind address for `lnrnn serve`")
    port: int = Field(8000, ge=1, le=65535, description="port for `lnrnn serve`")
    log_level: str = Field("info", description="uvicorn log level")
    # --- reliability and security -----------------------------------------------------------------
    api_key: SecretStr | None = Field(
        None, description="if set, /v1 needs `Authorization: Bearer <key>`; health and metrics stay open"
    )
    cors_origins: str = Field("", description="comma-separated allowed CORS origins; empty = CORS off")
    request_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="per-request deadline (queue wait included) -> 504"
    )
    max_inflight: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="requests served at once (a worker thread each); default 4 without batching "
        "(each runs its own graph calls), LNRNN_BATCH_STREAMS + 8 with it (a full call's rows and a few "
        "gathering the next)",
    )
    batch_streams: int = Field(
        32,
        ge=1,
        le=1024,
        description="most streams (rows) in one graph call shared by concurrent requests; 1 = no batching, "
        "every request runs its own calls",
    )
    batch_lanes: int = Field(
        0, ge=0, le=64, description="graph calls the batcher runs at once (one thread each); 0 = one per core"
    )
    batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="how long an idle batcher waits for requests being served to submit work (never when "
        "a request is alone); 0 = never",
    )
    max_queue: int = Field(64, ge=0, description="requests waiting for a slot; more -> 503 overloaded")
    shutdown_timeout_s: int = Field(
        30, ge=0, description="on SIGTERM, wait this long for in-flight requests before closing them"
    )

    @field_validator("model_dir", mode="after")
    @classmethod
    def _shipped_by_name(cls, value: Path) -> Path:
        """A bare name that is no directory here (``ladder-1m``) names the shipped model of that name, so an
        installed package's smaller models are one word away from any directory."""
        if len(value.parts) == 1 and not value.exists() and shipped_model(value.name).is_dir():
            return shipped_model(value.name)
        return value

    @model_validator(mode="after")
    def _no_retired_variables(self) -> Settings:
        if "LNRNN_INT8" in os.environ:  # ignoring it would silently change which files are served
            raise ValueError("LNRNN_INT8 was replaced by LNRNN_PRECISION=auto|fp32|int8: unset LNRNN_INT8")
        return self

    @property
    def inflight(self) -> int:
        """``max_inflight`` or its default for the batching mode."""
        if self.max_inflight is not None:
            return self.max_inflight
        # Batched: one full call's rows plus a few requests gathering for the next tick. Under 64 clients on
        # the default model, 2 x 32 in flight peaked at 209 MiB of RSS and 40 at 168 MiB (every worker
        # thread holds ~1.7 MB) for the same req/s: more waiting threads add memory, not throughput.
        return 4 if self.batch_streams == 1 else self.batch_streams + 8

    @property
    def body_limit(self) -> int:
        """Request body cap: JSON escapes can take 6 characters per byte (\\u0001)."""
        return self.max_body_bytes or 6 * self.max_text_bytes + 65536

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
