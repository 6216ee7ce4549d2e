"""The artifact contract round-trips and rejects broken metadata with a clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lnrnn.contract import (
    BOS_ID,
    META_CONFIG,
    META_INITIAL_STATE,
    SEQUENCE_GRAPH,
    STEP_GRAPH,
    VOCAB_SIZE,
    ArtifactConfig,
    ArtifactMetadata,
    ContractError,
    document_array,
    encode,
    graph_problems,
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
    assert document_array(encode("é")).tolist() == [256, 0xC3, 0xA9]
    assert document_array(b"", dtype=np.uint16).dtype == np.uint16


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


class _Value:
    def __init__(self, name: str, type_: str, shape: list[int | str | None]) -> None:
        self.name, self.type, self.shape = name, type_, shape


def test_graph_specs_check_names_dtypes_ranks_and_fixed_axes() -> None:
    config = _meta("gru").config  # 2 layers, state size 3
    good_in = [_Value("token", "tensor(int64)", ["batch"]), _Value("state", "tensor(float)", [2, "batch", 3])]
    good_out = [
        _Value("logprobs", "tensor(float)", ["b", 257]),
        _Value("state_out", "tensor(float)", [2, "b", 3]),
    ]
    assert graph_problems(STEP_GRAPH, good_in, good_out, config) == []
    assert STEP_GRAPH.dynamic_axes() == {
        "token": {0: "batch"},
        "state": {1: "batch"},
        "logprobs": {0: "batch"},
        "state_out": {1: "batch"},
    }
    assert SEQUENCE_GRAPH.dynamic_axes()["token_logprobs"] == {0: "batch", 1: "time_minus_1"}
    swapped = list(reversed(good_in))
    assert graph_problems(STEP_GRAPH, swapped, good_out) == [
        "inputs ['state', 'token'], expected ['token', 'state']"
    ]
    wrong_type = [_Value("token", "tensor(int32)", ["batch"]), good_in[1]]
    assert graph_problems(STEP_GRAPH, wrong_type, good_out) == [
        "token is tensor(int32), expected tensor(int64)"
    ]
    wide = [good_in[0], _Value("state", "tensor(float)", [2, "batch", 4])]
    assert graph_problems(STEP_GRAPH, wide, good_out) == []  # without the config only names/types/ranks
    assert graph_problems(STEP_GRAPH, wide, good_out, config) == [
        "state axis state_size is 4, but the metadata says 3"
    ]
