"""Parity with PyTorch on shapes the graphs were not traced with (traced at B=2, T=5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lnrnn.export.api import export_model
from lnrnn.export.verify import reference, runtime
from tests.helpers import tiny_model


@pytest.mark.slow
@pytest.mark.parametrize("sequence", ["fast", "generic"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_untraced_shapes(cell: str, sequence: str, tmp_path: Path) -> None:
    model = tiny_model(cell, "layer", 2, hidden=16)
    export_model(model, tmp_path, sequence=sequence, verify_data=b"short text")
    seq = runtime.open_session(tmp_path / "sequence.onnx")
    step = runtime.open_session(tmp_path / "step.onnx")
    rng = np.random.default_rng(7)
    for batch, steps in ((1, 1), (1, 2), (5, 40), (1, 3)):  # T = 1 is how one token is fed
        tokens = rng.integers(0, 257, size=(batch, steps), dtype=np.int64)
        state = model.init_state(batch).detach().numpy().copy()
        got = runtime.scorer(seq, state[:, 0]).sequence(tokens, state)
        want = reference.sequence_reference(model, tokens, state)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)
        lp, s = runtime.run_step(step, tokens[:, 0], state)
        want_lp, want_states = reference.step_reference(model, tokens[:, :1], state)
        np.testing.assert_allclose(lp, want_lp[0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(s, want_states[0], atol=1e-4, rtol=0)
        assert np.array_equal(lp.argmax(-1), want_lp[0].argmax(-1))  # same greedy next byte
