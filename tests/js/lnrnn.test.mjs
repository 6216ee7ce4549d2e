// serve/page/lnrnn.js under Node's test runner, with onnxruntime-web's WebAssembly backend (the browser's),
// against a real `lnrnn serve` and the numbers the Python scorer wrote. tests/serve/test_page_device.py
// starts the server, writes the numbers and runs this file with:
//   LNRNN_TEST_URL       the server's base URL (it serves the manifest and the model)
//   LNRNN_TEST_EXPECTED  a JSON file: {predict: [{text, k, candidates}], score: [{text, bits, per_char_bits}],
//                        precision}
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, describe, test } from "node:test";

import * as ort from "onnxruntime-web/wasm"; // the build the page loads: ort.wasm.bundle.min.mjs

import { LnRnn, LnRnnError } from "../../serve/page/lnrnn.js";

const URL_ = process.env.LNRNN_TEST_URL;
const EXPECTED = process.env.LNRNN_TEST_EXPECTED;
const PROB_TOL = 1e-4; // the bound: top-k probabilities as /v1/predict's
const BITS_TOL = 1e-3; // per-character bits as /v1/score's
const TIE = 1e-6; // two candidates closer than this may come in either order on two runtimes

/** Candidates equal /v1/predict's: probabilities rank by rank, characters wherever no near-tie decides. */
function assertSameCandidates(got, want, context) {
  assert.equal(got.length, want.length, `${context}: ${got.length} candidates, expected ${want.length}`);
  for (let i = 0; i < want.length; i += 1) {
    assert.ok(Math.abs(got[i].prob - want[i].prob) <= PROB_TOL, `${context} #${i}: p ${got[i].prob} vs ${want[i].prob}`);
    assert.ok(Math.abs(got[i].bits + Math.log2(got[i].prob)) < 1e-12, `${context} #${i}: bits = -log2 p`);
    const tied = [want[i - 1], want[i + 1]].some((o) => o && Math.abs(o.prob - want[i].prob) < TIE);
    if (!tied) assert.equal(got[i].char, want[i].char, `${context} #${i}`);
  }
}

function assertCloseArrays(got, want, tol, context) {
  assert.equal(got.length, want.length, `${context}: length`);
  const worst = Math.max(0, ...got.map((v, i) => Math.abs(v - want[i])));
  assert.ok(worst <= tol, `${context}: max |diff| ${worst} > ${tol}`);
}

describe("lnrnn.js against the Python scorer", { skip: !URL_ || !EXPECTED ? "set LNRNN_TEST_URL and LNRNN_TEST_EXPECTED" : false }, () => {
  let m;
  let expected;

  before(async () => {
    ort.env.wasm.numThreads = 1;
    expected = JSON.parse(readFileSync(EXPECTED, "utf8"));
    m = await LnRnn.load(URL_, { ort });
  });

  test("loads the manifest's model with the contract's names", () => {
    assert.equal(m.info.precision, expected.precision);
    assert.deepEqual(m.names.inputs, ["tokens", "state"]);
    assert.deepEqual(m.names.outputs, ["token_logprobs", "last_logprobs", "state_out"]);
    assert.equal(m.bosId, 256);
    assert.equal(m.vocabSize, 257);
  });

  test("predict gives /v1/predict's candidates (whole UTF-8 characters)", async () => {
    let multibyte = 0;
    for (const { text, k, candidates } of expected.predict) {
      const got = await m.predict(text, k);
      assertSameCandidates(got, candidates, `predict(${JSON.stringify(text)}, ${k})`);
      multibyte += got.filter((c) => new TextEncoder().encode(c.char).length > 1).length;
    }
    assert.ok(multibyte > 0, "some candidates are multi-byte characters (the expansion path ran)");
  });

  test("score gives /v1/score's bits and per-character bits", async () => {
    for (const { text, bits, per_char_bits: perChar, bytes } of expected.score) {
      const got = await m.score(text);
      assert.equal(got.bytes, bytes);
      assert.equal(got.chars, [...text].length);
      assertCloseArrays(got.per_char_bits, perChar, BITS_TOL, `score(${JSON.stringify(text.slice(0, 20))})`);
      assert.ok(Math.abs(got.bits - bits) <= BITS_TOL * perChar.length, `bits ${got.bits} vs ${bits}`);
      assert.ok(Math.abs(got.bits_per_byte - got.bits / bytes) < 1e-12);
    }
  });

  test("a session's appends pay for the same bits and list the same candidates as the whole text", async () => {
    const { text, per_char_bits: perChar } = expected.score[0];
    const pieces = [...text];
    const s = m.session();
    let last;
    const cut = [0, 1, 5, 6, 20, pieces.length];
    for (let i = 1; i < cut.length; i += 1) last = await s.append(pieces.slice(cut[i - 1], cut[i]).join(""), 5);
    assert.equal(s.text, text);
    assert.equal(last.total_bytes, new TextEncoder().encode(text).length);
    assertCloseArrays(s.charBits, perChar, BITS_TOL, "session bits");
    assertSameCandidates(last.candidates, await m.predict(text, 5), "session candidates");
    assert.ok(Math.abs(last.total_bits - s.totalBits) < 1e-9);

    // an edit in the middle: cut back, append something else; the same as a fresh session on that text
    await s.truncate(7);
    const edited = `${[...text].slice(0, 7).join("")} changed — ünïcode 🙂`;
    const again = await s.append(edited.slice(s.text.length), 3);
    const fresh = await m.score(edited);
    assert.equal(s.text, edited);
    assertCloseArrays(s.charBits, fresh.per_char_bits, 1e-9, "after truncate");
    assertSameCandidates(again.candidates, await m.predict(edited, 3), "after truncate");
    // predictAt(i): what /v1/predict says after the first i characters (the heat map's alternatives)
    for (const i of [0, 3, 9, [...edited].length]) {
      assertSameCandidates(await s.predictAt(i, 3), await m.predict([...edited].slice(0, i).join(""), 3), `predictAt(${i})`);
    }
    const empty = await s.append("", 2); // nothing read: only the candidates
    assert.equal(empty.bytes, 0);
    assert.equal(empty.candidates.length, 2);
  });

  test("step and initialState: the low-level recurrence, batched", async () => {
    const L = m.layers;
    const S = m.stateSize;
    const s0 = m.initialState(2);
    assert.equal(s0.length, L * 2 * S);
    const a = await m.step(Int32Array.of(256, 256), s0);
    assert.equal(a.logprobs.length, 2 * 257);
    assert.equal(a.state.length, L * 2 * S);
    assert.deepEqual(a.logprobs.slice(0, 257), a.logprobs.slice(257)); // same token, same state: same row
    const mass = a.logprobs.slice(0, 257).reduce((sum, v) => sum + Math.exp(v), 0);
    assert.ok(Math.abs(mass - 1) < 1e-5, `log-softmax sums to 1 (${mass})`);
    const b = await m.step(BigInt64Array.of(256n, 256n), s0);
    assert.deepEqual(b.logprobs, a.logprobs); // token ids as Int32Array or BigInt64Array alike
    // step after BOS from one stream = predict("") then the same byte: the rows feed the same recurrence
    const h = await m.step([104, 105], a.state);
    const one = await m.step([104], (await m.step([256], m.initialState(1))).state);
    assertCloseArrays(Array.from(h.logprobs.slice(0, 257)), Array.from(one.logprobs), 1e-5, "batched row = alone");
  });

  test("bad input is a clear error", async () => {
    const s0 = m.initialState(1);
    await assert.rejects(m.step([300], s0), /token 0 is 300: token ids are 0..256/);
    await assert.rejects(m.step([1, 2], s0), /state must be a Float32Array of \d+ numbers/);
    await assert.rejects(m.step([], s0), /batch must be a positive integer/);
    await assert.rejects(m.predict("abc", 0), /k must be an integer in 1\.\.100/);
    await assert.rejects(m.predict("a\uD800b"), LnRnnError);
    await assert.rejects(m.score(""), /at least one character/);
    assert.throws(() => m.initialState(0), /batch must be a positive integer/);
    assert.throws(() => m.session().truncate(-1), /non-negative integer/);
    await assert.rejects(LnRnn.load("http://127.0.0.1:9/", { ort }), /cannot fetch the manifest/);
  });
});
