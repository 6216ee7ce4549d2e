"""serve/page/complete.js (the page's on-device completions) against serve/engine/complete.py in Node.

Both search the same small deterministic model, written once in each language with every number rounded to
float32 as a graph's outputs are: the completions must be the same texts in the same order, with the same
probabilities and `ended` flags.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lnrnn.serve.engine.complete import complete

PAGE = Path(__file__).resolve().parents[2] / "serve" / "page"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="needs node (Node.js) to run the page's JS"
)

# state [1, B, 1]: one float per row; the next byte's logits depend on it, so every beam differs
JS_MODEL = """
const f32 = Math.fround;
function logprobs(s) {
  const logit = (b) => (b === 256 ? -30 : 6 * Math.sin(0.37 * b + 11 * s) + (b >= 128 ? 1 : 0));
  const z = Array.from({ length: 257 }, (_, b) => logit(b));
  const m = Math.max(...z);
  let sum = 0;
  for (const v of z) sum += Math.exp(v - m);
  return z.map((v) => f32(v - m - Math.log(sum)));
}
const model = {
  layers: 1,
  stateSize: 1,
  async step(tokens, state) {
    const next = Float32Array.from(tokens, (t, i) => f32((state[i] * 0.7 + t * 0.013 + 0.1) % 1));
    return { logprobs: Float32Array.from(Array.from(next, logprobs).flat()), state: next };
  },
};
"""


def logprobs(s: float) -> np.ndarray:
    z = np.array(
        [-30.0 if b == 256 else 6 * math.sin(0.37 * b + 11 * s) + (1 if b >= 128 else 0) for b in range(257)]
    )
    m = z.max()
    return (z - m - math.log(np.exp(z - m).sum())).astype(np.float32)


def step(tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nxt = np.array(
        [(float(s) * 0.7 + int(t) * 0.013 + 0.1) % 1 for s, t in zip(state[0, :, 0], tokens, strict=True)]
    )
    nxt = nxt.astype(np.float32)
    return np.stack([logprobs(float(s)) for s in nxt]), nxt[None, :, None]


CASES = [
    {"n": 3, "maxChars": 16, "until": "word"},
    {"n": 5, "maxChars": 6, "until": "line"},
    {"n": 10, "maxChars": 3, "until": "chars"},
    {"n": 4, "maxChars": 2, "until": "word", "width": 40},
    {"n": 10, "maxChars": 2, "until": "line", "width": 60},
]


def test_page_search_equals_the_server_search(tmp_path: Path) -> None:
    start = np.float32(0.25)
    script = tmp_path / "run.mjs"
    script.write_text(
        f'import {{ complete }} from "{(PAGE / "complete.js").as_uri()}";\n'
        + JS_MODEL
        + f"const at = {{ state: Float32Array.of({float(start)}), last: logprobs({float(start)}) }};\n"
        + f"const out = [];\nfor (const opts of {json.dumps(CASES)}) {{\n"
        + "  out.push(await complete(model, at, opts));\n}\n"
        + "console.log(JSON.stringify(out));\n"
    )
    proc = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for case, got in zip(CASES, json.loads(proc.stdout), strict=True):
        want = complete(
            step,
            logprobs(float(start)),
            np.full((1, 1, 1), start),
            n=case["n"],
            max_chars=case["maxChars"],
            until=case["until"],
            width=case.get("width", 0),
        )
        assert [g["text"] for g in got] == [w.text for w in want], case
        assert [g["ended"] for g in got] == [w.ended for w in want], case
        for g, w in zip(got, want, strict=True):
            assert g["probability"] == pytest.approx(w.probability, rel=1e-9)
            assert g["bits"] == pytest.approx(w.bits, rel=1e-9)
    assert any(not c["ended"] for out in json.loads(proc.stdout) for c in out)  # a cut completion is compared
    assert any(len(c["text"].encode()) > len(c["text"]) for out in json.loads(proc.stdout) for c in out)
