"""`POST /v1/complete`, `POST /v1/sessions/{id}/complete` and `lnrnn complete` on the tiny model."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lnrnn.cli import main
from lnrnn.serve.app import create_app
from lnrnn.serve.engine.complete import UNTIL, complete
from lnrnn.serve.engine.runtime import Runtime
from tests.helpers import TestClient, error, settings_for

TEXT = "To be, or not to be: that is the qu"


def engine(model_dir: Path, text: str, **kw: Any) -> list[dict[str, Any]]:
    """The search run directly on the model, as the routes answer it."""
    runtime = Runtime.load(model_dir, device="cpu", threads=1)
    last, state = runtime.context(text.encode(), cache=False)
    found = complete(runtime.scorer.next, last, state, **kw)
    return [{"text": c.text, "probability": c.probability, "bits": c.bits, "ended": c.ended} for c in found]


def same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [c["text"] for c in got] == [c["text"] for c in want]
    assert [c["ended"] for c in got] == [c["ended"] for c in want]
    for g, w in zip(got, want, strict=True):
        assert g["probability"] == pytest.approx(w["probability"], rel=1e-4)


def test_route_answers_the_search(client: TestClient, model_dir: Path) -> None:
    bodies: list[dict[str, Any]] = [
        {"text": TEXT},
        {"text": TEXT, "n": 5, "until": "line", "max_chars": 6},
        {},
    ]
    for body in bodies:
        r = client.post("/v1/complete", json=body)
        assert r.status_code == 200, r.text
        got = r.json()["completions"]
        kw = {k: v for k, v in body.items() if k != "text"}
        same(got, engine(model_dir, str(body.get("text", "")), **kw))
        assert len(got) == body.get("n", 3)
        probs = [c["probability"] for c in got]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
        for c in got:
            assert c["bits"] == pytest.approx(-math.log2(c["probability"]))
            assert len(c["text"]) <= body.get("max_chars", 16)
        assert client.post("/v1/complete", json=body).json() == r.json()  # deterministic


@pytest.fixture()
def unbatched(model_dir: Path) -> Iterator[TestClient]:
    """Each request runs its own graph calls, so the calls of one request can be watched."""
    with TestClient(create_app(settings_for(model_dir, batch_streams=1, cache_size=0))) as c:
        yield c


def test_session_complete_reads_the_state_and_leaves_it(
    unbatched: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = unbatched
    sid = c.post("/v1/sessions", json={"text": TEXT[:20]}).json()["session_id"]
    c.post(f"/v1/sessions/{sid}/append", json={"text": TEXT[20:]})
    session = c.app.state.sessions.peek(sid)  # type: ignore[attr-defined]
    state, last, info = session.state.copy(), session.last.copy(), c.get(f"/v1/sessions/{sid}").json()

    scorer = c.app.state.runtime.scorer  # type: ignore[attr-defined]
    lengths: list[int] = []  # tokens per row of every graph call
    graph_call = scorer.sequence

    def watched(tokens: np.ndarray, st: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lengths.append(tokens.shape[1])
        return graph_call(tokens, st)

    monkeypatch.setattr(scorer, "sequence", watched)
    r = c.post(f"/v1/sessions/{sid}/complete", json={"n": 4, "until": "word"})
    assert r.status_code == 200, r.text
    assert lengths and set(lengths) == {1}  # one byte per beam per call: the text was not fed again
    lengths.clear()
    stateless = c.post("/v1/complete", json={"text": TEXT, "n": 4}).json()
    assert max(lengths) == len(TEXT) + 1  # the stateless route feeds BOS + the text (the watch works)
    same(r.json()["completions"], stateless["completions"])

    after = c.app.state.sessions.peek(sid)  # type: ignore[attr-defined]
    assert np.array_equal(after.state, state) and np.array_equal(after.last, last)
    again = c.get(f"/v1/sessions/{sid}").json()
    assert (again["total_bytes"], again["total_bits"]) == (info["total_bytes"], info["total_bits"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 11}, "n"),
        ({"n": "3"}, "n"),
        ({"max_chars": 0}, "max_chars"),
        ({"max_chars": 33}, "max_chars"),
        ({"until": "sentence"}, "until"),
        ({"text": 5}, "text"),
        ({"txt": "typo"}, "txt"),
    ],
)
def test_invalid_requests_are_422(client: TestClient, body: dict[str, Any], field: str) -> None:
    assert field in error(client.post("/v1/complete", json=body), 422, "invalid_request")
    sid = client.post("/v1/sessions", json={}).json()["session_id"]
    session_body = {k: v for k, v in body.items() if k != "text"} or {"text": "not a session field"}
    error(client.post(f"/v1/sessions/{sid}/complete", json=session_body), 422, "invalid_request")


def test_lone_surrogate_too_large_and_unknown_session(client: TestClient) -> None:
    raw = b'{"text": "ab\\ud800"}'
    headers = {"content-type": "application/json"}
    assert "surrogate" in error(client.post("/v1/complete", content=raw, headers=headers), 422)
    message = error(client.post("/v1/complete", json={"text": "a" * 4001}), 413, "payload_too_large")
    assert "4001" in message
    error(client.post("/v1/sessions/nope/complete", json={}), 404, "not_found")


def test_openapi_documents_both_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/v1/complete"]["post"]
    assert route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CompleteResponse"
    )
    assert {"413", "422", "503", "504"} <= set(route["responses"])
    request = spec["components"]["schemas"]["CompleteRequest"]
    assert request["properties"]["until"]["enum"] == list(UNTIL)
    assert request["examples"] and spec["components"]["schemas"]["CompleteResponse"]["examples"]
    session = spec["paths"]["/v1/sessions/{session_id}/complete"]["post"]
    assert {"404", "422"} <= set(session["responses"])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_json_and_stdin(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "complete", "--model", str(model_dir), "-n", "2", "--json", TEXT)
    assert code == 0
    same(json.loads(out)["completions"], engine(model_dir, TEXT, n=2))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(TEXT.encode())))
    code, table, _ = run(capsys, "complete", "--model", str(model_dir), "-n", "2", "-")
    lines = table.splitlines()
    assert code == 0 and len(lines) == 4 and lines[1].split() == ["completion", "probability", "bits"]
    first = json.loads(out)["completions"][0]
    assert lines[2].startswith(repr(first["text"])) and f"{first['probability']:.6f}" in lines[2]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["-n", "0", "x"], b"", "-n must be in 1..10"),
        (["--max-chars", "33", "x"], b"", "--max-chars must be in 1..32"),
        (["-"], b"ab\xff", "not valid UTF-8"),
    ],
)
def test_cli_bad_input_is_one_line(
    model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: bytes,
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code, out, err = run(capsys, "complete", "--model", str(model_dir), *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and message in err
