"""What the tests share: tiny models, the app client, real server processes, test corpora."""

from tests.helpers.app import TestClient, error, settings_for
from tests.helpers.corpora import (
    ALPHABET,
    REPO,
    SHARED_DATA,
    isclose,
    markov_bytes,
    markov_entropy_rate,
    markov_source,
    read_jsonl,
    write_corpus,
)
from tests.helpers.models import (
    LSTM_VERIFY_BYTES,
    VERIFY_BYTES,
    VERIFY_DATA,
    TinyModel,
    export_tiny,
    export_tiny_int8,
    tiny_model,
    verify_text_for,
)
from tests.helpers.reference_scorer import score_bpc, score_nats
from tests.helpers.server import free_port, rss_kib, serve_argv, server, wait_live

__all__ = [
    "ALPHABET",
    "LSTM_VERIFY_BYTES",
    "REPO",
    "SHARED_DATA",
    "VERIFY_BYTES",
    "VERIFY_DATA",
    "TestClient",
    "TinyModel",
    "error",
    "export_tiny",
    "export_tiny_int8",
    "free_port",
    "isclose",
    "markov_bytes",
    "markov_entropy_rate",
    "markov_source",
    "read_jsonl",
    "rss_kib",
    "score_bpc",
    "score_nats",
    "serve_argv",
    "server",
    "settings_for",
    "tiny_model",
    "verify_text_for",
    "wait_live",
    "write_corpus",
]
