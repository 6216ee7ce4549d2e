"""The artifact contract round-trips and rejects broken metadata with a clear message."""

from __future__ import annotations

import json

import pytest

from lnrnn.contract import (
    BOS_ID,
    META_CONFIG,
    META_INITIAL_STATE,
    VOCAB_SIZE,
    ArtifactConfig,
    ArtifactMetadata,
    ContractError,
    document_tokens,
    encode,
)


def _meta(cell: str = "lstm") -> ArtifactMetadata:
    config = ArtifactConfig(cell=cell, norm="layer", layers=2, hidden=3, embedding=4, parameters=99)
    state = [[0.5] * config.state_size for _ in range(config.layers)]
    return ArtifactMetadata(config, state, valid_bpc=1.25, train_data="x", version="0.1.0", graph="step")


def test_roundtrip_and_state_size() -> None:
    meta = _meta()
    assert meta.config.state_size == 6  # LSTM carries h then c
    back = ArtifactMetadata.from_props(meta.to_props())
    assert back == meta
    assert ArtifactConfig(cell="gru", norm="none", layers=1, hidden=7, embedding=7).state_size == 7


def test_vocabulary_is_bytes_plus_bos() -> None:
    assert (VOCAB_SIZE, BOS_ID) == (257, 256)
    assert document_tokens(encode("é")) == [256, 0xC3, 0xA9]


def test_lone_surrogate_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        encode("\ud800")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (META_CONFIG, "{not json", "not valid JSON"),
        (
            META_CONFIG,
            json.dumps({"cell": "rnn", "norm": "layer", "layers": 1, "hidden": 2, "embedding": 2}),
            "unknown cell",
        ),
        (META_INITIAL_STATE, "[[0.0]]", "must be a \\[2\\]\\[6\\]"),
    ],
)
def test_broken_metadata_is_named(key: str, value: str, message: str) -> None:
    props = _meta().to_props()
    props[key] = value
    with pytest.raises(ContractError, match=message):
        ArtifactMetadata.from_props(props)


def test_missing_keys_are_listed() -> None:
    props = _meta().to_props()
    del props[META_CONFIG]
    with pytest.raises(ContractError, match="missing lnrnn.config"):
        ArtifactMetadata.from_props(props)
