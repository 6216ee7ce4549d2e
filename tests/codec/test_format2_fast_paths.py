"""The format-2 code written for speed computes the integer recipe it documents, also at the edges the
golden archives may never reach (pre-activations around the table's clip and the rounding offsets), and
the default layout chooses one lane for small inputs and two from 16 blocks on."""

from __future__ import annotations

import numpy as np

from lnrnn.codec import StepGraph, compress, information, lanes_for, unpack
from lnrnn.codec.integer import network_for
from lnrnn.codec.integer import tables as tb


def reference_gates(inp: np.ndarray, rec: np.ndarray, h: np.ndarray, hidden: int) -> np.ndarray:
    """The GRU update as the module docstring states it: clip, table, integer rounding shifts."""
    two, half, shift = 2 * hidden, 1 << (tb.GATE_BITS - 1), tb.GATE_BITS
    sigmoid, tanh = tb.sigmoid_table().astype(np.int64), tb.tanh_table().astype(np.int64)
    u = np.clip(inp[:, :two] + rec[:, :two], -tb.PRE_LIMIT, tb.PRE_LIMIT - 1).astype(np.int64)
    rz = sigmoid[u + tb.PRE_LIMIT]
    r, z = rz[:, :hidden], rz[:, hidden:]
    v = ((r * rec[:, two:].astype(np.int64) + half) >> shift) + inp[:, two:].astype(np.int64)
    n = tanh[np.clip(v, -tb.PRE_LIMIT, tb.PRE_LIMIT - 1) + tb.PRE_LIMIT]
    return n + (((h.astype(np.int64) - n) * z + half) >> shift)


def test_gates_equal_the_integer_recipe_at_the_edges(graph: StepGraph) -> None:
    network, _ = network_for(graph)
    hidden = network.hidden
    rng = np.random.default_rng(7)
    rows = 64
    edges = np.array([-(1 << 20), -tb.PRE_LIMIT - 1, -tb.PRE_LIMIT, -tb.PRE_LIMIT + 1, -1, 0, 1])
    edges = np.concatenate([edges, -edges, [tb.PRE_LIMIT - 1, tb.PRE_LIMIT - 2]])
    inp = np.where(rng.random((rows, 3 * hidden)) < 0.5, rng.choice(edges, (rows, 3 * hidden)), 0)
    inp = inp + rng.integers(-(1 << 17), 1 << 17, (rows, 3 * hidden)) * (rng.random((rows, 3 * hidden)) < 0.5)
    rec = rng.integers(-(1 << 18), 1 << 18, (rows, 3 * hidden))
    rec[::3] = rng.choice(edges, rec[::3].shape)  # r * rec lands on both sides of the clip and of -0.5
    h = rng.integers(-tb.GATE_ONE, tb.GATE_ONE + 1, (rows, hidden))
    out = np.empty((rows, hidden), dtype=np.float64)
    network._gates(inp.astype(np.float64), rec.astype(np.float64), h.astype(np.float64), out)
    assert np.array_equal(out.astype(np.int64), reference_gates(inp, rec, h, hidden))


def test_default_lanes_one_below_sixteen_blocks_two_from_there(graph: StepGraph) -> None:
    block = 64
    sizes = (0, 1, 15 * block, 15 * block + 1, 16 * block, 10**6)
    assert [lanes_for(n, block) for n in sizes] == [1, 1, 1, 2, 2, 2]
    text = bytes(range(32, 127)) * 11  # 1045 bytes: 17 blocks
    for data, lanes in ((text[: 15 * block], 1), (text, 2)):
        result = compress(data, graph, block_size=block, version=2)
        assert unpack(result.blob)[0].lanes == lanes
        assert information(data, graph, block_size=block, version=2) == result.nats  # the same layout
    assert unpack(compress(text[:100], graph, block_size=block, lanes=2, version=2).blob)[0].lanes == 2
