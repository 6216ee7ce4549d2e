"""The compute-bound arithmetic behind the uncached /v1/predict target, pinned to hand-computed counts."""

from __future__ import annotations

import pytest

from bench.cost import sequence_bound


def test_sequence_bound_counts_the_default_shape_by_hand() -> None:
    # GRU 2 x 448, E = H: recurrent 2 layers x 2 x 3 x 448^2; hoisted: layer 2's input (2 x 3 x 448^2)
    # plus the output layer 2 x 448 x 257
    b = sequence_bound("gru", 2, 448, 448, 201, gemv_gflops=36.0, gemm_gflops=94.0)
    assert b["recurrent_flops_per_token"] == 2_408_448
    assert b["hoisted_flops_per_token"] == 1_204_224 + 230_272
    assert b["us_per_token"] == pytest.approx(2_408_448 / 36e3 + 1_434_496 / 94e3)
    assert b["bound_ms"] == pytest.approx(201 * b["us_per_token"] / 1000)


def test_sequence_bound_adds_the_top_projection_when_embedding_differs() -> None:
    # LSTM 1 x 64 with E = 32: no higher layer; the top projects H -> E, then E x V
    b = sequence_bound("lstm", 1, 64, 32, 10, gemv_gflops=1.0, gemm_gflops=1.0)
    assert b["recurrent_flops_per_token"] == 2 * 4 * 64 * 64
    assert b["hoisted_flops_per_token"] == 2 * 32 * 257 + 2 * 64 * 32
