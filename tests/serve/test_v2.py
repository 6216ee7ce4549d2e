"""Open Inference Protocol v2 routes: the protocol by hand (JSON and binary), then the real clients."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lnrnn.serve.app import create_app
from lnrnn.serve.engine.runtime import Runtime
from tests.helpers import TestClient, TinyModel, free_port, serve_argv, server, settings_for

TEXTS = ["The quick brown fox jumps over the lazy dog. ", "ünïcödé and 日本語 too ", "x"]


def bytes_binary(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def infer_json(client: TestClient, model: str, body: dict, **kw: object):  # type: ignore[no-untyped-def]
    return client.post(f"/v2/models/{model}/infer", content=json.dumps(body), **kw)


def text_request(texts: list[str], **parameters: object) -> dict:
    body: dict = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    if parameters:
        body["parameters"] = parameters
    return body


def outputs_by_name(body: dict) -> dict[str, dict]:
    return {o["name"]: o for o in body["outputs"]}


def test_health_metadata_and_readiness(client: TestClient, model_dir: Path) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"live": True, "ready": True}
    server_meta = client.get("/v2").json()
    assert server_meta["name"] == "lnrnn"
    assert server_meta["extensions"] == ["binary_tensor_data", "sequence", "sequence(string_id)"]
    text = client.get("/v2/models/lnrnn").json()
    assert text["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in text["outputs"]] == ["bits", "bits_per_byte", "top_chars", "top_probs"]
    step = client.get("/v2/models/lnrnn-step/versions/1").json()
    assert step["inputs"][1] == {"name": "state", "datatype": "FP32", "shape": [2, -1, 32]}
    assert step["outputs"][0] == {"name": "logprobs", "datatype": "FP32", "shape": [-1, 257]}
    assert client.get("/v2/models/lnrnn/ready").json() == {"name": "lnrnn", "ready": True}
    for path in ("/v2/models/gpt", "/v2/models/lnrnn/versions/2", "/v2/models/gpt/ready"):
        response = client.get(path)
        assert response.status_code == 404
        assert isinstance(response.json()["error"], str)
    # an unknown v2 route and a wrong method are v2-style errors too
    assert client.get("/v2/nope").json()["error"].startswith("no route GET /v2/nope")
    assert client.get("/v2/models/lnrnn/infer").status_code == 405


def test_not_ready_server_answers_503(tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(tmp_path / "missing"))) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        ready = c.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert c.get("/v2/models/lnrnn/ready").status_code == 503
        response = infer_json(c, "lnrnn", text_request(["abc"]))
        assert response.status_code == 503
        assert response.json()["error"].startswith("model not loaded")


def test_json_infer_equals_v1_score(client: TestClient, tiny: TinyModel) -> None:
    response = infer_json(client, "lnrnn", text_request(TEXTS, top_k=3))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    out = outputs_by_name(response.json())
    assert response.json()["model_name"] == "lnrnn"
    for i, text in enumerate(TEXTS):
        v1 = client.post("/v1/score", json={"text": text}).json()
        n = len(text.encode())
        assert abs(out["bits"]["data"][i] - v1["bits"]) / n <= 1e-4
        assert out["bits_per_byte"]["data"][i] == pytest.approx(v1["bits_per_byte"], abs=1e-4)
        assert abs(out["bits"]["data"][i] - tiny.bits(text.encode())) / n <= 1e-4
    assert out["top_chars"]["shape"] == [3, 3] and out["top_probs"]["shape"] == [3, 3]
    predicted = client.post("/v1/predict", json={"text": TEXTS[0], "top_k": 3}).json()["candidates"]
    assert out["top_chars"]["data"][:3] == [c["char"] for c in predicted]
    assert out["top_probs"]["data"][:3] == pytest.approx([c["prob"] for c in predicted], abs=1e-5)


def test_binary_request_and_response(client: TestClient, tiny: TinyModel) -> None:
    texts = [b"\xff\xfe not UTF-8 \x80", b"plain text"]
    chunk = bytes_binary(texts)
    head = json.dumps(
        {
            "id": "req-7",
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(chunk)},
                }
            ],
            "outputs": [{"name": "bits", "parameters": {"binary_data": True}}, {"name": "bits_per_byte"}],
        }
    ).encode()
    response = client.post(
        "/v2/models/lnrnn/infer",
        content=head + chunk,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert response.status_code == 200, response.text
    n = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:n])
    assert header["id"] == "req-7"
    bits_out, bpb_out = header["outputs"]
    assert bits_out["parameters"] == {"binary_data_size": 8} and "data" not in bits_out
    bits = np.frombuffer(response.content[n:], dtype="<f4")
    assert len(response.content) == n + 8
    for i, data in enumerate(texts):
        assert abs(bits[i] - tiny.bits(data)) / len(data) <= 1e-4
        assert bpb_out["data"][i] == pytest.approx(bits[i] / len(data), rel=1e-5)


def test_gzip_request_body(client: TestClient) -> None:
    body = gzip.compress(json.dumps(text_request(["compressed on the wire"])).encode())
    response = client.post("/v2/models/lnrnn/infer", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    plain = infer_json(client, "lnrnn", text_request(["compressed on the wire"])).json()
    assert response.json()["outputs"] == plain["outputs"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        (b"{not json", {}, 400, "not a JSON object"),
        (b"[1, 2]", {}, 400, "JSON object"),
        (json.dumps({"inputs": []}).encode(), {}, 400, "non-empty list"),
        (json.dumps(text_request(["a"]) | {"extra": 1}).encode(), {}, 400, "unknown request field"),
        (json.dumps(text_request([""])).encode(), {}, 400, "text 0 is empty"),
        (json.dumps(text_request(["a"], top_k=0.5)).encode(), {}, 400, "top_k"),
        (json.dumps(text_request(["a"], top_k=101)).encode(), {}, 400, "top_k"),
        (json.dumps(text_request(["a"], temperature=2)).encode(), {}, 400, "does not take parameter"),
        (json.dumps(text_request(["a"], sequence_start=True)).encode(), {}, 400, "non-zero sequence_id"),
        (
            json.dumps(
                {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["a"]}]}
            ).encode(),
            {},
            400,
            "shape holds 2 elements but data has 1",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "text", "datatype": "INT64", "shape": [1], "data": [1]}]}
            ).encode(),
            {},
            400,
            "must be BYTES",
        ),
        (
            json.dumps(
                {"inputs": [{"name": "words", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}
            ).encode(),
            {},
            400,
            "takes one input, 'text'",
        ),
        (
            json.dumps(text_request(["a"])).encode(),
            {"Inference-Header-Content-Length": "9999"},
            400,
            "length",
        ),
        (json.dumps(text_request(["a"])).encode(), {"Content-Encoding": "br"}, 415, "Content-Encoding"),
        (
            json.dumps(text_request(["a"]) | {"outputs": [{"name": "top_chars"}]}).encode(),
            {},
            404,
            "need the parameter top_k",
        ),
        (json.dumps(text_request(["é" * 2100])).encode(), {}, 413, "LNRNN_MAX_TEXT_BYTES"),
    ],
)
def test_bad_requests_get_v2_errors(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    response = client.post("/v2/models/lnrnn/infer", content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and needle in error, error


def test_binary_framing_errors(client: TestClient) -> None:
    def post(chunk: bytes, size: int) -> str:
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": "text",
                        "datatype": "BYTES",
                        "shape": [1],
                        "parameters": {"binary_data_size": size},
                    }
                ]
            }
        ).encode()
        response = client.post(
            "/v2/models/lnrnn/infer",
            content=head + chunk,
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert response.status_code == 400, response.text
        return response.json()["error"]

    assert "runs past the end of the body" in post(bytes_binary([b"abc"]), 50)
    assert "truncated length prefix" in post(b"\x03\x00", 2)
    assert "runs past binary_data_size" in post(struct.pack("<I", 10) + b"abc", 7)
    assert "belong to no input" in post(bytes_binary([b"abc"]) + b"zz", 7)
    assert "the binary data has 2" in post(bytes_binary([b"a", b"b"]), 10)


def test_sequence_pieces_add_up_to_the_whole(client: TestClient) -> None:
    pieces = ["Once upon a time, ", "there was a ", "byte-level model. ", "é!"]
    whole = client.post("/v1/score", json={"text": "".join(pieces)}).json()["bits"]
    for sequence_id in (42, "doc-ü-1"):
        total = 0.0
        for i, piece in enumerate(pieces):
            params = {
                "sequence_id": sequence_id,
                "sequence_start": i == 0,
                "sequence_end": i == len(pieces) - 1,
            }
            response = infer_json(client, "lnrnn", text_request([piece], **params))
            assert response.status_code == 200, response.text
            total += outputs_by_name(response.json())["bits"]["data"][0]
        assert abs(total - whole) / len("".join(pieces).encode()) <= 1e-4
        # the sequence is closed after sequence_end
        after = infer_json(client, "lnrnn", text_request(["more"], sequence_id=sequence_id))
        assert after.status_code == 404 and "sequence_start=true" in after.json()["error"]


def test_sequence_is_a_session_and_start_replaces_it(client: TestClient) -> None:
    first = infer_json(client, "lnrnn", text_request(["abc"], sequence_id=7, sequence_start=True))
    assert first.status_code == 200
    info = client.get("/v1/sessions/v2:7").json()
    assert info["total_bytes"] == 3
    infer_json(client, "lnrnn", text_request(["defg"], sequence_id=7, sequence_start=True))
    assert client.get("/v1/sessions/v2:7").json()["total_bytes"] == 4
    two = infer_json(client, "lnrnn", text_request(["a", "b"], sequence_id=7))
    assert two.status_code == 400 and "one text" in two.json()["error"]
    client.delete("/v1/sessions/v2:7")


def test_step_model_matches_the_scorer(client: TestClient, model_dir: Path) -> None:
    runtime = Runtime.load(model_dir, precision="fp32")
    tokens = [256, 104, 105]
    request = {"inputs": [{"name": "token", "datatype": "INT64", "shape": [1], "data": [tokens[0]]}]}
    state: list[float] | None = None
    shape: list[int] = []
    for t in tokens:
        request["inputs"][0]["data"] = [t]
        if state is not None:
            request["inputs"].append({"name": "state", "datatype": "FP32", "shape": shape, "data": state})
        response = infer_json(client, "lnrnn-step", request)
        assert response.status_code == 200, response.text
        out = outputs_by_name(response.json())
        state, shape = out["state_out"]["data"], out["state_out"]["shape"]
        request["inputs"] = request["inputs"][:1]
    fed = runtime.scorer.feed(np.array(tokens), runtime.scorer.start_state())
    assert np.asarray(out["logprobs"]["data"]) == pytest.approx(fed.last[0], abs=1e-4)
    assert np.asarray(state).reshape(shape) == pytest.approx(fed.state, abs=1e-4)


def test_step_model_errors(client: TestClient) -> None:
    def error(inputs: list[dict], **extra: object) -> str:
        response = infer_json(client, "lnrnn-step", {"inputs": inputs, **extra})
        assert response.status_code == 400, response.text
        return response.json()["error"]

    token = {"name": "token", "datatype": "INT64", "shape": [2], "data": [1, 257]}
    assert "outside 0..256" in error([token])
    state = {"name": "state", "datatype": "FP32", "shape": [2, 1, 32], "data": [0.0] * 64}
    assert "[2, 2, 32]" in error([token | {"data": [1, 2]}, state])
    assert "takes 'token'" in error([state])
    assert "does not take parameter" in error([token | {"data": [1, 2]}], parameters={"sequence_id": 3})
    assert "INT64 values" in error([token | {"data": [1.5, 2]}])


def test_api_key_guards_v2_but_not_its_health(model_dir: Path) -> None:
    with TestClient(create_app(settings_for(model_dir, api_key="s3cret"))) as c:
        assert c.get("/v2/health/ready").status_code == 200
        for response in (
            c.get("/v2"),
            c.get("/v2/models/lnrnn"),
            infer_json(c, "lnrnn", text_request(["a"])),
        ):
            assert response.status_code == 401
            assert "Bearer" in response.json()["error"]
        ok = infer_json(c, "lnrnn", text_request(["a"]), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


# --- the real clients, against a real server process ---------------------------------------------------


@pytest.fixture(scope="module")
def live_url(tiny: TinyModel) -> Iterator[str]:
    port = free_port()
    argv = serve_argv(tiny.dir, port)
    with server(argv, port) as (url, _):
        yield url


@pytest.mark.slow
def test_tritonclient_defaults_binary(live_url: str, tiny: TinyModel) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(live_url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("lnrnn")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    texts = [b"\x00\xff raw bytes \xc3", b"Tiny Shakespeare: ROMEO."]
    text = httpclient.InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array(texts, dtype=np.object_))  # binary_data=True: the default
    result = client.infer("lnrnn", [text], parameters={"top_k": 2})
    bits = result.as_numpy("bits")
    for i, data in enumerate(texts):
        assert abs(bits[i] - tiny.bits(data)) / len(data) <= 1e-4
    assert result.as_numpy("top_chars").shape == (2, 2)
    v1 = __import__("httpx").post(f"{live_url}/v1/score", json={"text": texts[1].decode()}).json()
    assert abs(bits[1] - v1["bits"]) / len(texts[1]) <= 1e-4
    # a text streamed in pieces with the sequence extension
    total = 0.0
    pieces = [b"streamed ", b"in three ", b"pieces"]
    for i, piece in enumerate(pieces):
        inp = httpclient.InferInput("text", [1], "BYTES")
        inp.set_data_from_numpy(np.array([piece], dtype=np.object_))
        out = client.infer(
            "lnrnn", [inp], sequence_id=1001, sequence_start=i == 0, sequence_end=i == len(pieces) - 1
        )
        total += float(out.as_numpy("bits")[0])
    assert abs(total - tiny.bits(b"".join(pieces))) / len(b"".join(pieces)) <= 1e-4
    # the raw step graph, the client carrying the state
    token = httpclient.InferInput("token", [1], "INT64")
    token.set_data_from_numpy(np.array([256], dtype=np.int64))
    step = client.infer("lnrnn-step", [token])
    assert step.as_numpy("logprobs").shape == (1, 257)
    assert math.isclose(float(np.exp(step.as_numpy("logprobs")).sum()), 1.0, rel_tol=1e-4)
    # a bad request surfaces as the server's message
    with pytest.raises(Exception, match="outside 0..256"):
        token.set_data_from_numpy(np.array([999], dtype=np.int64))
        client.infer("lnrnn-step", [token])
    client.close()


@pytest.mark.slow
def test_kserve_rest_client(live_url: str, tiny: TinyModel) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def run() -> tuple[bool, np.ndarray, np.ndarray]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        ready = await client.is_server_ready(live_url)
        inp = InferInput(name="text", shape=[len(TEXTS)], datatype="BYTES")
        inp.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=True)
        response = await client.infer(live_url, InferRequest(model_name="lnrnn", infer_inputs=[inp]), "lnrnn")
        outputs = {o.name: o.as_numpy() for o in response.outputs}
        await client.close()
        return ready, outputs["bits"], outputs["bits_per_byte"]

    ready, bits, bpb = asyncio.run(run())
    assert ready is True
    for i, text in enumerate(TEXTS):
        data = text.encode()
        assert abs(bits[i] - tiny.bits(data)) / len(data) <= 1e-4
        assert bpb[i] == pytest.approx(bits[i] / len(data), rel=1e-5)
