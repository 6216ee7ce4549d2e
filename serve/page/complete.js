// Completions on the device: serve/engine/complete.py's beam search over bytes, step for step, on top of
// lnrnn.js's model. Every live beam is a row of one model.step call, so one call advances all of them.
//
//   import { LnRnn } from "/page/lnrnn.js";
//   import { complete } from "/page/complete.js";
//   const m = await LnRnn.load("/");
//   const at = { state, last };   // after the context: Float32Array [L, 1, S] and its next-byte log-probs [257]
//   await complete(m, at, { n: 3, maxChars: 16, until: "word" });
//   // [{text, probability, bits, ended}], most likely first: what POST /v1/complete answers
//
// The same semantics as the server (README "Completions"): a completion ends after a word end (ASCII
// whitespace or punctuation), a newline, or exactly maxChars characters (until "word" | "line" | "chars"),
// the ending character included; one still open after maxChars characters is kept with ended false. Its
// probability is the product of the model's byte probabilities; only whole UTF-8 characters are searched.
// Beam width 4 n; ties in byte order. Neither `at` nor the model is changed. With `signal` (an AbortSignal)
// the search stops before its next model call once the signal is aborted, rejecting with the signal's reason:
// a keyboard drops a search the next keystroke made useless instead of making that keystroke wait for it.

import { charLength, nextRange } from "./lnrnn.js";

export const UNTIL = ["word", "line", "chars"];
export const BEAM_PER_COMPLETION = 4;
// Python's string.whitespace + string.punctuation, as WORD_ENDS in serve/engine/complete.py
const WORD_ENDS = new Set(Array.from(" \t\n\r\x0b\x0c!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", (c) => c.charCodeAt(0)));
const NEWLINE = 0x0a;
const LN2 = Math.log(2);
const decoder = new TextDecoder("utf-8", { fatal: true });

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Best first: higher log-probability, then byte order (Python's sort of (-logprob, bytes) tuples). */
function better(x, y) {
  return x.score !== y.score ? y.score - x.score : compareBytes(x.bytes, y.bytes);
}

/** The bytes that may come next after `pending`, the unfinished character's bytes (utf8.next_mask). */
function* nextBytes(pending) {
  if (pending.length) {
    const [lo, hi] = nextRange(pending[0], pending.length);
    for (let b = lo; b <= hi; b += 1) yield b;
    return;
  }
  for (let b = 0; b <= 0x7f; b += 1) yield b;
  for (let b = 0xc2; b <= 0xf4; b += 1) yield b;
}

function check(n, maxChars, until) {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be an integer >= 1, got ${n}`);
  if (!Number.isInteger(maxChars) || maxChars < 1) throw new RangeError(`maxChars must be an integer >= 1, got ${maxChars}`);
  if (!UNTIL.includes(until)) throw new RangeError(`until must be one of ${UNTIL.join(", ")}, got ${until}`);
}

/** Rows `rows` of a [L, B, S] state as a [L, rows.length, S] state. */
function gather(state, layers, batch, size, rows) {
  const out = new Float32Array(layers * rows.length * size);
  for (let l = 0; l < layers; l += 1) {
    rows.forEach((r, i) => out.set(state.subarray((l * batch + r) * size, (l * batch + r + 1) * size), (l * rows.length + i) * size));
  }
  return out;
}

/**
 * The n most likely completions after a context whose state [L, 1, S] and next-byte log-probs [257] are
 * `at` ({state, last}), best first (fewer if fewer exist). `model` needs step(tokens, state) ->
 * {logprobs [B, 257], state [L, B, S]}, layers and stateSize (lnrnn.js's LnRnn has them).
 */
export async function complete(model, at, { n = 3, maxChars = 16, until = "word", width = 0, signal = null } = {}) {
  check(n, maxChars, until);
  width = width || BEAM_PER_COMPLETION * n;
  const V = at.last.length;
  const isEnd = until === "word" ? (b) => WORD_ENDS.has(b) : (b) => b === NEWLINE;
  let beams = [{ bytes: [], score: 0, chars: 0, pending: [] }];
  let logprobs = at.last;
  let state = at.state;
  let found = []; // {score, bytes, ended}, best first, at most n
  const threshold = () => (found.length === n ? found[n - 1].score : -Infinity);
  while (beams.length) {
    const candidates = [];
    beams.forEach((beam, row) => {
      for (const b of nextBytes(beam.pending)) {
        const score = beam.score + logprobs[row * V + b];
        if (!(score > -Infinity)) continue;
        // a byte finishes a character if it is ASCII after a finished one, or the last byte of a started one
        const finishes = beam.pending.length ? beam.pending.length + 1 === charLength(beam.pending[0]) : b < 0x80;
        const chars = beam.chars + (finishes ? 1 : 0);
        const ended = until === "chars" ? chars === maxChars : finishes && isEnd(b);
        candidates.push({ row, b, score, finishes, chars, ended, final: ended || (finishes && chars === maxChars) });
      }
    });
    const limit = threshold();
    for (const c of candidates) {
      if (c.final && c.score >= limit) found.push({ score: c.score, bytes: [...beams[c.row].bytes, c.b], ended: c.ended });
    }
    found = found.sort(better).slice(0, n);
    const keep = threshold();
    // every live beam has the same length, so byte order is (the parent's byte order, the new byte)
    const rank = new Array(beams.length);
    beams.map((_, i) => i).sort((i, j) => compareBytes(beams[i].bytes, beams[j].bytes)).forEach((r, k) => { rank[r] = k; });
    const next = candidates
      .filter((c) => !c.final && c.score >= keep)
      .sort((x, y) => (x.score !== y.score ? y.score - x.score : rank[x.row] - rank[y.row] || x.b - y.b))
      .slice(0, width);
    beams = next.map((c) => {
      const parent = beams[c.row];
      return { bytes: [...parent.bytes, c.b], score: c.score, chars: c.chars, pending: c.finishes ? [] : [...parent.pending, c.b] };
    });
    if (beams.length) {
      if (signal) signal.throwIfAborted();
      const rows = next.map((c) => c.row);
      const batch = state.length / (model.layers * model.stateSize);
      const out = await model.step(Int32Array.from(next, (c) => c.b), gather(state, model.layers, batch, model.stateSize, rows));
      logprobs = out.logprobs;
      state = out.state;
    }
  }
  return found.map((f) => ({
    text: decoder.decode(Uint8Array.from(f.bytes)),
    probability: Math.exp(f.score),
    bits: -f.score / LN2,
    ended: f.ended,
  }));
}
