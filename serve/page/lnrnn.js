// lnrnn on the device: the model a `lnrnn serve` offers at GET /v1/device, run by ONNX Runtime Web
// (WebAssembly, one thread) in the browser or in Node. A plain ES module: no build step, no dependency,
// nothing loaded from another origin.
//
//   import { LnRnn } from "/page/lnrnn.js";
//   const m = await LnRnn.load("/");                 // the server's base URL; fetches the runtime and the model once
//   await m.predict("To be, or not to b", 5);        // [{char, prob, bits}]: /v1/predict's candidates
//   await m.score("héllo");                          // {bytes, chars, bits, bits_per_byte, bits_per_char, per_char_bits}
//   const s = m.session();                           // typing: pay only for what is appended
//   await s.append("To be");                         // {bytes, bits, total_bytes, total_bits, candidates, other, ...}
//   const st = m.initialState(2);                    // low level: Float32Array [L, B, S]
//   const { logprobs, state } = await m.step(Int32Array.of(84, 97), st);  // Float32Array [B, 257], [L, B, S]
//
// The numbers are the server's: the same graph file (the manifest names it), the same chunking of a text, and
// decode.top_chars' exact search for whole UTF-8 characters (below), so candidates equal /v1/predict's and
// per-character bits equal /v1/score's on the same model and precision (within float rounding of the runtime).

export const MANIFEST_PATH = "v1/device";
const CHECKPOINT_BYTES = 64; // a session keeps its state every this many bytes, to go back after an edit
const MAX_EXPAND = 256; // prefixes expanded per batched call, as decode.MAX_EXPAND
const LN2 = Math.log(2);

export class LnRnnError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "LnRnnError";
    this.status = status; // the HTTP status when the server refused (401: API key), else 0
  }
}

// --- UTF-8 (serve/engine/utf8.py) ---------------------------------------------------------------------

/** Bytes in a character that starts with `lead`; 0 if `lead` cannot start one. */
export function charLength(lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/** Inclusive range of the byte at `position` (1..3) of a character starting with `lead` (RFC 3629). */
export function nextRange(lead, position) {
  if (position === 1) {
    const narrowed = { 0xe0: [0xa0, 0xbf], 0xed: [0x80, 0x9f], 0xf0: [0x90, 0xbf], 0xf4: [0x80, 0x8f] };
    if (narrowed[lead]) return narrowed[lead];
  }
  return [0x80, 0xbf];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Text -> UTF-8 bytes; a lone surrogate cannot be encoded (the server answers 422 for it too). */
export function encode(text) {
  if (typeof text !== "string") throw new TypeError(`text must be a string, got ${typeof text}`);
  if (!text.isWellFormed()) throw new LnRnnError("text is not encodable as UTF-8: it has a lone surrogate");
  return encoder.encode(text);
}

/** softmax(logprobs) in float64, as decode.probabilities at temperature 1. */
function probabilities(logprobs, offset = 0, n = logprobs.length - offset) {
  let max = -Infinity;
  for (let i = 0; i < n; i += 1) max = Math.max(max, logprobs[offset + i]);
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i += 1) {
    p[i] = Math.exp(logprobs[offset + i] - max);
    sum += p[i];
  }
  for (let i = 0; i < n; i += 1) p[i] /= sum;
  return p;
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

// (p, bytes) ordered as Python orders the tuples decode.top_chars keeps in its heap.
function compareFound(x, y) {
  return x.p !== y.p ? (x.p < y.p ? -1 : 1) : compareBytes(x.bytes, y.bytes);
}

/** Indices 0..n-1 ordered by value descending, ties by index (numpy argsort(-x, kind="stable")). */
function descending(values, indices) {
  return indices.sort((i, j) => (values[j] === values[i] ? i - j : values[j] > values[i] ? 1 : -1));
}

/** The candidates list of /v1/predict: p > 0, with bits = -log2 p. */
function candidates(found) {
  return found.filter((c) => c.prob > 0).map((c) => ({ char: c.char, prob: c.prob, bits: -Math.log2(c.prob) }));
}

// --- the model -------------------------------------------------------------------------------------------

export class LnRnn {
  /**
   * Fetch the manifest at `${baseUrl}v1/device`, the runtime and the model it names (once: the browser's
   * caches and the page's service worker keep them), and open the model.
   * options.ort: an already imported onnxruntime-web (Node: `import * as ort from "onnxruntime-web"`);
   * options.apiKey: the server's LNRNN_API_KEY, if it sets one; options.fetch: a fetch function.
   */
  static async load(baseUrl, options = {}) {
    const base = new URL(baseUrl, globalThis.location?.href);
    if (!base.pathname.endsWith("/")) base.pathname += "/"; // the server's root: v1/device is below it
    const fetcher = options.fetch || globalThis.fetch.bind(globalThis);
    const headers = options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : {};
    const started = performance.now();
    const get = async (url, what) => {
      let response;
      try {
        response = await fetcher(url, { headers });
      } catch (err) {
        throw new LnRnnError(`cannot fetch the ${what} from ${url} (${err.message})`);
      }
      if (!response.ok) {
        let message = response.statusText;
        try {
          message = (await response.json()).error.message;
        } catch {
          // not the server's JSON error: keep the status text
        }
        throw new LnRnnError(`the ${what} at ${url}: ${response.status} ${message}`, response.status);
      }
      return response;
    };
    const manifest = await (await get(new URL(MANIFEST_PATH, base), "manifest")).json();
    if (manifest.format !== 1) throw new LnRnnError(`unknown manifest format ${manifest.format}`);
    let ort = options.ort;
    if (!ort) {
      if (!manifest.runtime) {
        throw new LnRnnError(`the server has no ONNX Runtime Web files: ${manifest.runtime_missing}`, 404);
      }
      ort = await import(new URL(manifest.runtime.module.url, base).href);
      ort.env.wasm.wasmPaths = { wasm: new URL(manifest.runtime.wasm.url, base).href };
    }
    ort.env.wasm.numThreads = 1; // one thread: no cross-origin isolation needed, and sums in one fixed order
    ort.env.wasm.proxy = false;
    const modelBytes = new Uint8Array(await (await get(new URL(manifest.model.url, base), "model")).arrayBuffer());
    const session = await ort.InferenceSession.create(modelBytes, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    const want = [manifest.model.inputs, manifest.model.outputs];
    const got = [session.inputNames, session.outputNames];
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      throw new LnRnnError(`${manifest.model.file}: inputs/outputs ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
    return new LnRnn(ort, session, manifest, performance.now() - started);
  }

  constructor(ort, session, manifest, loadMs) {
    const model = manifest.model;
    this.ort = ort;
    this.graph = session;
    this.manifest = manifest;
    this.loadMs = loadMs;
    this.layers = model.config.layers;
    this.stateSize = model.state_size;
    this.vocabSize = model.vocab_size;
    this.bosId = model.bos_id;
    this.chunkTokens = model.chunk_tokens;
    this.maxTopK = model.max_top_k;
    this.names = { inputs: model.inputs, outputs: model.outputs }; // [tokens, state], [token_lp, last, state_out]
    this.initial = Float32Array.from(model.initial_state.flat()); // [L, S]
    if (this.initial.length !== this.layers * this.stateSize) {
      throw new LnRnnError(`initial_state has ${this.initial.length} numbers, expected ${this.layers}x${this.stateSize}`);
    }
    this.queue = Promise.resolve(); // one graph call at a time (one wasm instance)
  }

  /** What is loaded: name, precision, file, sizes, runtime version and the model's config. */
  get info() {
    const { model, runtime } = this.manifest;
    return { name: model.name, precision: model.precision, file: model.file, config: model.config,
      valid_bpc: model.valid_bpc, model_bytes: model.bytes, runtime: runtime && runtime.version, load_ms: this.loadMs };
  }

  /** The learned initial state for `batch` streams: Float32Array [L, batch, S]. */
  initialState(batch = 1) {
    checkBatch(batch);
    const S = this.stateSize;
    const out = new Float32Array(this.layers * batch * S);
    for (let l = 0; l < this.layers; l += 1) {
      for (let b = 0; b < batch; b += 1) out.set(this.initial.subarray(l * S, (l + 1) * S), (l * batch + b) * S);
    }
    return out;
  }

  /**
   * One token per stream: tokens (Int32Array, BigInt64Array or numbers, length B), state Float32Array
   * [L, B, S] -> {logprobs: Float32Array [B, 257] (log-softmax of the next token), state: [L, B, S]}.
   * The same graph call as the server's Scorer.next (the sequence graph with T = 1).
   */
  async step(tokens, state) {
    const ids = this.tokenIds(tokens);
    const B = ids.length;
    checkBatch(B);
    this.checkState(state, B);
    const out = await this.run(ids, [B, 1], state);
    return { logprobs: out.last, state: out.state };
  }

  /** The k most likely next characters after `text` (a document from its start): /v1/predict. */
  async predict(text, k = 5) {
    this.checkK(k);
    const fed = await this.feedDocument(encode(text), false);
    return this.topChars(fed.last, fed.state, k);
  }

  /** Bits of `text` (>= 1 character), scored as [BOS, bytes...] from the initial state: /v1/score per_char. */
  async score(text) {
    const data = encode(text);
    if (data.length === 0) throw new LnRnnError("score needs a text of at least one character");
    const fed = await this.feedDocument(data, true);
    let nats = 0;
    for (const v of fed.nats) nats += v;
    const perChar = perCharBits(data, fed.nats);
    const bits = nats / LN2;
    return { bytes: data.length, chars: perChar.length, bits, bits_per_byte: bits / data.length,
      bits_per_char: bits / perChar.length, per_char_bits: perChar };
  }

  /** A session: a text that grows (append), can be cut back (truncate), and knows every character's bits. */
  session() {
    return new Session(this);
  }

  // --- internals ---------------------------------------------------------------------------------------

  tokenIds(tokens) {
    if (!(tokens instanceof BigInt64Array || tokens instanceof Int32Array || Array.isArray(tokens))) {
      throw new TypeError("tokens must be an Int32Array, a BigInt64Array or an array of numbers");
    }
    const ids = new BigInt64Array(tokens.length);
    for (let i = 0; i < tokens.length; i += 1) {
      const t = Number(tokens[i]);
      if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) {
        throw new RangeError(`token ${i} is ${tokens[i]}: token ids are 0..${this.vocabSize - 1} (${this.bosId} = BOS)`);
      }
      ids[i] = BigInt(t);
    }
    return ids;
  }

  checkState(state, batch) {
    const want = this.layers * batch * this.stateSize;
    if (!(state instanceof Float32Array) || state.length !== want) {
      throw new RangeError(
        `state must be a Float32Array of ${want} numbers ([L=${this.layers}, B=${batch}, S=${this.stateSize}])` +
        `, got ${state instanceof Float32Array ? state.length : typeof state}`);
    }
  }

  checkK(k) {
    if (!Number.isInteger(k) || k < 1 || k > this.maxTopK) throw new RangeError(`k must be an integer in 1..${this.maxTopK}, got ${k}`);
  }

  /** One graph call: tokens BigInt64Array [B, T], state [L, B, S] -> token log-probs [B, T-1], last [B, V], state. */
  run(ids, shape, state) {
    const [B] = shape;
    const call = async () => {
      const [tokensName, stateName] = this.names.inputs;
      const [tokenLpName, lastName, stateOutName] = this.names.outputs;
      const feeds = {
        [tokensName]: new this.ort.Tensor("int64", ids, shape),
        [stateName]: new this.ort.Tensor("float32", state, [this.layers, B, this.stateSize]),
      };
      const out = await this.graph.run(feeds);
      return { tokenLogprobs: out[tokenLpName].data, last: out[lastName].data, state: out[stateOutName].data };
    };
    const result = this.queue.then(call);
    this.queue = result.catch(() => {});
    return result;
  }

  /**
   * Feed bytes to one stream from (state, last) in chunks of chunk_tokens (Scorer.feed): every byte is paid
   * for with the distribution before it. With `keep` (a session), chunks also end at every multiple of
   * CHECKPOINT_BYTES of the text's offset (`base` + position) and keep(offset, state, last) is called there.
   */
  async feed(data, state, last, perToken, base = 0, keep = null) {
    const nats = perToken ? new Float64Array(data.length) : null;
    let total = 0;
    for (let start = 0; start < data.length;) {
      let end = Math.min(data.length, start + this.chunkTokens);
      if (keep) end = Math.min(end, (Math.floor((base + start) / CHECKPOINT_BYTES) + 1) * CHECKPOINT_BYTES - base);
      const ids = new BigInt64Array(end - start);
      for (let i = start; i < end; i += 1) ids[i - start] = BigInt(data[i]);
      const out = await this.run(ids, [1, end - start], state);
      for (let i = start; i < end; i += 1) {
        const v = -(i === start ? last[data[i]] : out.tokenLogprobs[i - start - 1]);
        total += v;
        if (nats) nats[i] = v;
      }
      state = out.state;
      last = out.last;
      start = end;
      if (keep) keep(base + start, state, last);
    }
    return { nats, total, state, last };
  }

  /** [BOS, bytes...] from the initial state: BOS in the first call, as Scorer.feed_text cuts a document. */
  async feedDocument(data, perToken) {
    const n = Math.min(data.length, this.chunkTokens - 1);
    const ids = new BigInt64Array(n + 1);
    ids[0] = BigInt(this.bosId);
    for (let i = 0; i < n; i += 1) ids[i + 1] = BigInt(data[i]);
    const first = await this.run(ids, [1, n + 1], this.initialState(1));
    const nats = perToken ? new Float64Array(data.length) : null;
    for (let i = 0; i < n; i += 1) if (nats) nats[i] = -first.tokenLogprobs[i];
    const rest = await this.feed(data.subarray(n), first.state, first.last, perToken);
    if (nats && rest.nats) nats.set(rest.nats, n);
    return { nats, state: rest.state, last: rest.last };
  }

  /**
   * decode.top_chars, step for step: the k most likely next characters and their joint probabilities,
   * best first. Exact: a byte prefix no more likely than the k-th best complete character is dropped;
   * survivors are expanded one byte level at a time in batched calls. BOS and bytes that cannot start or
   * continue UTF-8 are never expanded.
   */
  async topChars(last, state, k) {
    const dist = probabilities(last);
    const found = []; // the best complete characters: {p, bytes}
    const minimum = () => found.reduce((m, x) => (compareFound(x, m) < 0 ? x : m));
    const threshold = () => (found.length === k ? minimum().p : 0);
    const offer = (p, bytes) => {
      if (found.length < k) found.push({ p, bytes });
      else {
        const m = minimum();
        if (p > m.p) found[found.indexOf(m)] = { p, bytes };
      }
    };
    const ascii = descending(dist, Array.from({ length: 128 }, (_, i) => i)).slice(0, k);
    for (const b of ascii) offer(dist[b], [b]);
    let frontier = [];
    for (let b = 0xc2; b < 0xf5; b += 1) if (dist[b] > threshold()) frontier.push({ p: dist[b], prefix: [b], state });
    const S = this.stateSize;
    const L = this.layers;
    while (frontier.length) {
      frontier.sort((x, y) => y.p - x.p); // stable, as Python's sort
      const deeper = [];
      for (let start = 0; start < frontier.length; start += MAX_EXPAND) {
        const batch = frontier.slice(start, start + MAX_EXPAND).filter((item) => item.p > threshold());
        if (!batch.length) break; // sorted: the rest are below the threshold too
        const B = batch.length;
        const states = new Float32Array(L * B * S);
        batch.forEach((item, i) => {
          for (let l = 0; l < L; l += 1) states.set(item.state.subarray(l * S, (l + 1) * S), (l * B + i) * S);
        });
        const out = await this.step(Int32Array.from(batch, (item) => item.prefix[item.prefix.length - 1]), states);
        batch.forEach((item, i) => {
          const probs = probabilities(out.logprobs, i * this.vocabSize, this.vocabSize);
          const [lo, hi] = nextRange(item.prefix[0], item.prefix.length);
          const child = [];
          for (let b = lo; b <= hi; b += 1) child.push(item.p * probs[b]);
          const complete = item.prefix.length + 1 === charLength(item.prefix[0]);
          const limit = threshold();
          const keep = descending(child, child.map((_, j) => j).filter((j) => child[j] > limit));
          for (const j of keep) {
            const bytes = [...item.prefix, lo + j];
            if (complete) offer(child[j], bytes);
            else if (child[j] > threshold()) deeper.push({ p: child[j], prefix: bytes, state: row(out.state, L, B, S, i) });
          }
        });
      }
      frontier = deeper;
    }
    found.sort((x, y) => -compareFound(x, y));
    return candidates(found.map((x) => ({ char: decoder.decode(Uint8Array.from(x.bytes)), prob: x.p })));
  }
}

function checkBatch(batch) {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
}

/** Row `i` of a [L, B, S] state as a [L, 1, S] state. */
function row(state, L, B, S, i) {
  const out = new Float32Array(L * S);
  for (let l = 0; l < L; l += 1) out.set(state.subarray((l * B + i) * S, (l * B + i + 1) * S), l * S);
  return out;
}

/** Per-character bits: each character's bytes' nats summed, / ln 2 (as /v1/score's per_char_bits). */
function perCharBits(data, nats, from = 0) {
  const out = [];
  for (let i = from; i < data.length; i += 1) {
    if ((data[i] & 0xc0) !== 0x80) out.push(0);
    out[out.length - 1] += nats[i];
  }
  return out.map((v) => v / LN2);
}

// --- sessions ------------------------------------------------------------------------------------------

class Session {
  constructor(model) {
    this.model = model;
    this.text = ""; // what the session has read
    this.bytes = new Uint8Array(0);
    this.charStarts = []; // byte offset of each character
    this.charBits = []; // bits of each character
    this.checkpoints = new Map(); // byte offset -> {state, last}: every CHECKPOINT_BYTES, and the end
    this.queue = Promise.resolve();
  }

  /** Bits of everything read so far. */
  get totalBits() {
    return this.charBits.reduce((a, b) => a + b, 0);
  }

  /** The characters read so far with their bits: [{char, bits}] (the heat map's numbers). */
  characters() {
    return Array.from(this.text, (char, i) => ({ char, bits: this.charBits[i] }));
  }

  /**
   * Read `text` after what the session has read (the first append starts the document with BOS) and list
   * the k most likely next characters: {bytes, bits, total_bytes, total_bits, per_char_bits, candidates,
   * other}, as POST /v1/sessions/{id}/append. An empty text only lists the candidates.
   */
  append(text, k = 5) {
    this.model.checkK(k);
    const data = encode(text);
    return this.serial(async () => {
      const at = await this.end();
      const offset = this.bytes.length;
      const keep = (o, state, last) => {
        if (o % CHECKPOINT_BYTES === 0) this.checkpoints.set(o, { state, last });
      };
      const fed = await this.model.feed(data, at.state, at.last, true, offset, keep);
      if (data.length && offset % CHECKPOINT_BYTES !== 0) this.checkpoints.delete(offset); // no longer the end
      this.checkpoints.set(offset + data.length, { state: fed.state, last: fed.last });
      const grown = new Uint8Array(offset + data.length);
      grown.set(this.bytes);
      grown.set(data, offset);
      this.bytes = grown;
      const perChar = perCharBits(data, fed.nats);
      for (let i = 0; i < data.length; i += 1) if ((data[i] & 0xc0) !== 0x80) this.charStarts.push(offset + i);
      this.charBits.push(...perChar);
      this.text += text;
      const found = await this.model.topChars(fed.last, fed.state, k);
      const sum = found.reduce((a, c) => a + c.prob, 0);
      return { bytes: data.length, bits: fed.total / LN2, total_bytes: grown.length, total_bits: this.totalBits,
        per_char_bits: perChar, candidates: found, other: Math.max(0, 1 - sum) };
    });
  }

  /** Forget everything after the first `length` UTF-16 units of the text (rounded down to a whole character). */
  truncate(length) {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
    return this.serial(async () => {
      let units = Math.min(length, this.text.length);
      if (units > 0 && units < this.text.length && /[\uD800-\uDBFF]/.test(this.text[units - 1])) units -= 1;
      const kept = this.text.slice(0, units);
      const chars = Array.from(kept).length;
      const offset = chars < this.charStarts.length ? this.charStarts[chars] : this.bytes.length;
      if (offset === this.bytes.length) return;
      const at = await this.at(offset);
      for (const o of this.checkpoints.keys()) if (o > offset) this.checkpoints.delete(o);
      this.checkpoints.set(offset, at);
      this.bytes = this.bytes.slice(0, offset);
      this.charStarts.length = chars;
      this.charBits.length = chars;
      this.text = kept;
    });
  }

  /** The k most likely characters after the first `index` characters: /v1/predict on that prefix. */
  predictAt(index, k = 5) {
    this.model.checkK(k);
    if (!Number.isInteger(index) || index < 0 || index > this.charStarts.length) {
      throw new RangeError(`index must be in 0..${this.charStarts.length}, got ${index}`);
    }
    return this.serial(async () => {
      const offset = index < this.charStarts.length ? this.charStarts[index] : this.bytes.length;
      const at = await this.at(offset);
      return this.model.topChars(at.last, at.state, k);
    });
  }

  // one operation at a time, in the order they were asked for
  serial(work) {
    const result = this.queue.then(work);
    this.queue = result.catch(() => {});
    return result;
  }

  /** State and next-byte log-probs at the end of the text (BOS fed on first use). */
  async end() {
    if (this.checkpoints.size === 0) {
      const m = this.model;
      const out = await m.run(BigInt64Array.of(BigInt(m.bosId)), [1, 1], m.initialState(1));
      this.checkpoints.set(0, { state: out.state, last: out.last });
    }
    return this.checkpoints.get(this.bytes.length);
  }

  /** State and log-probs after the first `offset` bytes: from the nearest checkpoint before it. */
  async at(offset) {
    await this.end();
    let from = 0;
    for (const o of this.checkpoints.keys()) if (o <= offset && o > from) from = o;
    const start = this.checkpoints.get(from);
    if (from === offset) return start;
    const fed = await this.model.feed(this.bytes.subarray(from, offset), start.state, start.last, false);
    return { state: fed.state, last: fed.last };
  }
}
