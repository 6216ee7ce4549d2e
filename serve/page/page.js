// The lnrnn page: next-character suggestions, word completions and a heat map of the bits per character,
// computed on this device (lnrnn.js and complete.js: ONNX Runtime Web, no request while typing, offline after
// one visit through sw.js) or on the server (a server-held session, one append per edit at the end, its
// /complete, and /v1/surprisal). Plain ES modules, no build step, same origin only.
import { complete } from "./complete.js";
import { LnRnn, LnRnnError } from "./lnrnn.js";

{
  const TOP_K = 5;
  // Word completions: the same search on the device (complete.js) and on the server (/complete). 24 characters
  // keep most long words whole (the API's default is 16, its bound 32); a longer one is offered by its start.
  const COMPLETE = { n: 3, until: "word", maxChars: 24 };
  const ALTERNATIVES = 3;
  const HEAT_DELAY_MS = 300; // on the server the heat map costs one model call per byte: wait for a pause
  const DEVICE_HEAT_DELAY_MS = 30; // on the device its numbers are already there: only the drawing waits
  const SCALE_MAX_BITS = 10; // colours saturate here; the exact bits are in data-bits and on hover/focus
  const KEY_STORE = "lnrnn.apiKey";
  const MODE_STORE = "lnrnn.runsOn";
  // viridis (matplotlib), sampled at 9 points: perceptually uniform and readable with colour-blindness.
  const VIRIDIS = [
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
  ];
  const NAMES = { " ": "space", "\n": "newline", "\t": "tab", "\r": "carriage return" };
  const SHOWN = { " ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍" };

  const $ = (id) => document.getElementById(id);
  const input = $("text");
  const suggestions = $("suggestions");
  const completions = $("completions");
  const heatmap = $("heatmap");
  const detail = $("detail");
  const summary = $("summary");
  const errorBox = $("error");
  const keyField = $("key");
  const runsOn = $("runs-on");
  const where = $("where");

  let apiKey = sessionStorage.getItem(KEY_STORE) || "";
  let session = null; // {id, text}: the text the server-held session has read
  let syncing = null; // the running sync() promise
  let shown = { text: null, candidates: [] }; // suggestions on screen and the text they follow
  let completed = { text: null, items: [] }; // completions on screen and the text they follow
  let hidden = false; // Esc hides the suggestions until the next edit
  let acceptWhenReady = false; // Tab pressed while suggestions were on their way
  let stopCompleting = null; // AbortController of the completion search running on the device
  let composing = false; // IME composition: wait for the final text
  let restart = false; // set by a new key; handled between two requests of the sync loop
  let heatTimer = 0;
  let heatSeq = 0;
  let heatChars = []; // the last /v1/surprisal characters
  let active = -1; // heat map character under keyboard focus
  const errors = new Map(); // source -> message: the model, the suggestions and the heat map fail apart
  const canRunHere = typeof WebAssembly === "object";
  let mode = localStorage.getItem(MODE_STORE) || (canRunHere ? "device" : "server");
  if (!canRunHere) mode = "server";
  let device = null; // {loading: Promise<LnRnn>, model, session, key}: the model on this device
  let inputAt = 0; // when the last input event came (the suggestions' latency is measured from it)
  // The service worker keeps what device mode downloads. On a first visit, wait (3 s at most) until it
  // controls the page, so that the first download already goes through it and is kept for offline use.
  const workerReady = !("serviceWorker" in navigator) ? Promise.resolve() : navigator.serviceWorker
    .register("sw.js")
    .then(() => navigator.serviceWorker.controller || new Promise((resolve) => {
      navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true });
      setTimeout(resolve, 3000);
    }))
    .catch(() => {}); // offline use only: the page works without it

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  // --- HTTP ---------------------------------------------------------------------------------------

  function headers(json) {
    const h = {};
    if (json) h["Content-Type"] = "application/json"; // the server refuses other bodies (415)
    if (apiKey) h.Authorization = `Bearer ${apiKey}`;
    return h;
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, "network", `cannot reach the server (${err.message})`);
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const e = (data && data.error) || {};
      throw new ApiError(
        response.status,
        e.code || "http_error",
        e.message || response.statusText || "request failed",
        response.headers.get("Retry-After"),
      );
    }
    return data;
  }

  // --- errors -------------------------------------------------------------------------------------

  function describe(err) {
    if (err instanceof LnRnnError) {
      const key = err.status === 401 ? "The server needs an API key: enter it above. " : "";
      return `${key}On this device: ${err.message}`;
    }
    if (!(err instanceof ApiError)) return `Unexpected error: ${err.message || err}`;
    const what = {
      0: "The server cannot be reached.",
      401: "The server needs an API key: enter it above.",
      404: "Not found.",
      413: "The text is too long for the server.",
      415: "The request was refused (415).",
      422: "The server refused the request.",
      429: "The server has too many open sessions; close other tabs or wait a minute.",
      503: "The server is busy or its model is not ready; retry in a moment.",
      504: "The server took too long; try a shorter text.",
    }[err.status] || `The server answered ${err.status}.`;
    const retry = err.retryAfter ? ` Retry after ${err.retryAfter} s.` : "";
    return err.status ? `${what} (${err.status} ${err.code}: ${err.message})${retry}` : `${what} ${err.message}`;
  }

  function setError(source, err) {
    if (err) errors.set(source, describe(err));
    else errors.delete(source);
    const messages = [...new Set(errors.values())];
    errorBox.replaceChildren(...messages.map((m) => Object.assign(document.createElement("p"), { textContent: m })));
    errorBox.hidden = messages.length === 0;
  }

  // --- characters and colours ---------------------------------------------------------------------

  function visible(ch) {
    if (SHOWN[ch]) return SHOWN[ch];
    const code = ch.codePointAt(0);
    if (code < 0x20) return String.fromCodePoint(0x2400 + code); // control pictures
    if (code === 0x7f) return "␡";
    return ch;
  }

  function named(ch) {
    if (NAMES[ch]) return NAMES[ch];
    const code = ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    return `“${ch}” (U+${code})`;
  }

  /** A completion read out: its words quoted, the characters between them named ("“morrow” then space"). */
  function spoken(text) {
    const parts = Array.from(text.matchAll(/[^\s\p{Cc}]+|[\s\p{Cc}]/gu), ([run]) => (
      run.length === 1 && visible(run) !== run ? named(run) : `“${run}”`));
    return parts.join(" then ");
  }

  function percent(p) {
    if (p >= 0.1) return `${(100 * p).toFixed(1)}%`;
    if (p >= 0.001) return `${(100 * p).toFixed(2)}%`;
    return `${(100 * p).toPrecision(2)}%`;
  }

  // Few bits = light yellow, many bits = dark purple: the surprising characters stand out on white.
  function colour(bits) {
    const t = 1 - Math.min(Math.max(bits, 0), SCALE_MAX_BITS) / SCALE_MAX_BITS;
    const x = t * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
    const f = x - i;
    const rgb = VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
    const luminance = (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
    return { background: `rgb(${rgb.join(",")})`, text: luminance > 0.45 ? "#000" : "#fff" };
  }

  function drawLegend() {
    const stops = [];
    for (let b = 0; b <= SCALE_MAX_BITS; b += 1) {
      stops.push(`${colour(b).background} ${(100 * b) / SCALE_MAX_BITS}%`);
    }
    $("legend-bar").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
    const ticks = [];
    for (let b = 0; b <= SCALE_MAX_BITS; b += 2) {
      const tick = document.createElement("span");
      tick.textContent = b === SCALE_MAX_BITS ? `≥ ${b}` : `${b}`;
      tick.style.left = `${(100 * b) / SCALE_MAX_BITS}%`;
      ticks.push(tick);
    }
    $("legend-ticks").replaceChildren(...ticks);
  }

  // --- suggestions and completions ----------------------------------------------------------------

  /** One button of a row: the text as shown, its probability as a percent and a bar; `label` is for screen readers. */
  function chip(shownText, prob, label, choose) {
    const li = document.createElement("li");
    li.dataset.prob = String(prob);
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = label; // markTab() adds which key takes it
    button.setAttribute("aria-label", label);
    const glyph = Object.assign(document.createElement("span"), { className: "glyph", textContent: shownText });
    const pct = Object.assign(document.createElement("span"), { className: "prob", textContent: percent(prob) });
    const bar = Object.assign(document.createElement("span"), { className: "bar" });
    bar.style.width = `${Math.max(2, 100 * prob)}%`;
    button.append(glyph, pct, bar);
    button.addEventListener("click", choose);
    li.append(button);
    return li;
  }

  // Tab takes the first completion when one is shown, else the first next character (the keydown handler
  // decides the same way): that button is highlighted and its label says "Tab".
  function markTab() {
    const target = completions.firstElementChild || suggestions.firstElementChild;
    for (const li of [...suggestions.children, ...completions.children]) {
      const button = li.firstElementChild;
      li.classList.toggle("tab", li === target);
      button.setAttribute("aria-label", li === target ? `${button.dataset.label}, Tab` : button.dataset.label);
    }
  }

  function setState(list, state) {
    list.dataset.state = state;
    list.setAttribute("aria-busy", String(state === "loading"));
  }

  function showSuggestions(text, candidates) {
    shown = { text, candidates };
    setState(suggestions, "ready");
    suggestions.dataset.length = String(text.length); // they follow the first `length` UTF-16 units
    if (inputAt && text === input.value) {
      suggestions.dataset.ms = (performance.now() - inputAt).toFixed(2); // input event -> suggestions in the DOM
      inputAt = 0;
    }
    const items = hidden ? [] : candidates.map((c) => {
      const li = chip(visible(c.char), c.prob, `${named(c.char)}, ${percent(c.prob)}`, () => insert(c.char));
      li.dataset.char = c.char;
      return li;
    });
    suggestions.replaceChildren(...items);
    if (completed.text !== text) {
      // completions of another text would end another word: gone until this text's arrive (next in the loop)
      completed = { text: null, items: [] };
      completions.replaceChildren();
      setState(completions, "loading");
    }
    markTab();
    if (acceptWhenReady) {
      // Tab came before anything for this text was shown: it takes what it would have taken then, the first
      // character (the completions come after the characters)
      acceptWhenReady = false;
      if (candidates.length && text === input.value) insert(candidates[0].char);
    }
  }

  // A completion of one character is a next character the chips already offer with the same probability
  // (both are that character's): it would take one of the three places and leave Tab's key to the same
  // character, so it is not shown. Empty ones cannot come from the search (maxChars >= 1) and would insert
  // nothing. Fewer than three are then shown: a wider search per keystroke is not worth the slot.
  function showCompletions(text, found) {
    const chars = new Set(shown.text === text ? shown.candidates.map((c) => c.char) : []);
    const items = found.filter((c) => c.text && !(Array.from(c.text).length === 1 && chars.has(c.text)));
    completed = { text, items };
    setState(completions, "ready");
    completions.dataset.length = String(text.length);
    completions.replaceChildren(...(hidden ? [] : items.map((c) => {
      const label = `complete with ${spoken(c.text)}, ${percent(c.probability)}`;
      const li = chip(Array.from(c.text, visible).join(""), c.probability, label, () => insertCompletion(text, c.text));
      li.dataset.testid = "completion";
      li.dataset.text = c.text;
      return li;
    })));
    markTab();
  }

  // The loops below end in step with the text unless they failed: a list that needed no new answer is ready.
  function settle() {
    for (const [list, text] of [[suggestions, shown.text], [completions, completed.text]]) {
      if (list.dataset.state === "loading" && text === input.value) setState(list, "ready");
    }
  }

  function failed(err) {
    setError("suggestions", err);
    for (const list of [suggestions, completions]) {
      list.replaceChildren();
      setState(list, "error");
    }
    completed = { text: null, items: [] };
    acceptWhenReady = false;
  }

  // Keep the session in step with the text: an append when the text only grew at the end, else a new
  // session with the whole text (and the old one deleted), then the completions of that text. One sync at a
  // time, so an answer always belongs to the text it is shown for; edits made meanwhile are picked up by the
  // next turn of the loop, so fast typing costs one append per pause (and completions only at a pause), not a
  // queue.
  function sync() {
    if (!syncing) {
      setState(suggestions, "loading");
      if (completed.text !== input.value) setState(completions, "loading");
      syncing = (mode === "device" ? deviceSyncLoop() : syncLoop()).finally(() => {
        syncing = null;
        settle();
      });
    }
    return syncing;
  }

  /** POST to one of the session's routes; null when the session is gone (expired, or a server restart). */
  async function onSession(s, route, body) {
    try {
      return await api("POST", `v1/sessions/${encodeURIComponent(s.id)}/${route}`, body);
    } catch (err) {
      if (err.status !== 404) throw err;
      session = null; // the loop starts again with the whole text
      return null;
    }
  }

  async function syncLoop() {
    try {
      for (;;) {
        if (restart) {
          restart = false; // a new key: the next request starts a new session
          closeSession();
          shown = { text: null, candidates: [] };
          completed = { text: null, items: [] };
        }
        const text = input.value;
        if (session && text === session.text && shown.text === text) {
          if (completed.text === text) break;
          // the session has read this text already: completing it sends no text and changes nothing
          const { n, until, maxChars } = COMPLETE;
          const r = await onSession(session, "complete", { n, until, max_chars: maxChars });
          if (r) showCompletions(text, r.completions);
        } else if (session && text.startsWith(session.text) && text !== session.text) {
          const s = session;
          const r = await onSession(s, "append", { text: text.slice(s.text.length), top_k: TOP_K });
          if (!r) continue;
          s.text = text;
          showSuggestions(text, r.candidates);
        } else {
          closeSession();
          const r = await api("POST", "v1/sessions", { text, top_k: TOP_K });
          session = { id: r.session_id, text };
          showSuggestions(text, r.candidates);
        }
        setError("suggestions", null);
      }
    } catch (err) {
      failed(err);
    }
  }

  function closeSession(keepalive = false) {
    if (!session) return;
    const id = session.id;
    session = null;
    // Best effort: an unused session also expires on the server by itself.
    fetch(`v1/sessions/${encodeURIComponent(id)}`, { method: "DELETE", headers: headers(false), keepalive })
      .catch(() => {});
  }

  // The device's session follows the text: cut back to where the new text differs, then append the rest;
  // then complete.js searches from the state at its end.
  async function deviceSyncLoop() {
    try {
      const { model, session } = await loadDevice();
      for (;;) {
        const text = input.value;
        if (mode !== "device") break;
        if (session.text === text && shown.text === text) {
          if (completed.text === text) break;
          // serial(): nothing else that uses the session (the heat map's alternatives) runs in the middle. A
          // keystroke stops the search (edited()): one search costs several model calls, which the next
          // keystroke's suggestions would otherwise wait for.
          const stop = new AbortController();
          stopCompleting = stop;
          let found;
          try {
            found = await session.serial(async () => complete(model, await session.end(), { ...COMPLETE, signal: stop.signal }));
          } catch (err) {
            if (!stop.signal.aborted) throw err;
            continue; // the newer text goes first
          } finally {
            stopCompleting = null;
          }
          if (mode === "device") showCompletions(text, found);
          continue;
        }
        let same = 0;
        while (same < session.text.length && same < text.length && session.text[same] === text[same]) same += 1;
        if (same < session.text.length) await session.truncate(same);
        const r = await session.append(text.slice(session.text.length), TOP_K);
        if (mode === "device") showSuggestions(session.text, r.candidates);
        setError("suggestions", null);
      }
    } catch (err) {
      failed(err);
    }
  }

  function insert(ch) {
    const start = input.selectionStart;
    input.setRangeText(ch, start, input.selectionEnd, "end");
    input.focus();
    edited();
  }

  // A completion goes on from the end of the text it was found for, so it goes there, and only while the text
  // is still that one: a click that races a newer keystroke does nothing (that text's own row comes next).
  function insertCompletion(text, completion) {
    if (input.value !== text) return;
    input.setRangeText(completion, text.length, text.length, "end");
    input.focus();
    edited();
  }

  // --- heat map -----------------------------------------------------------------------------------

  function scheduleHeat(delay = mode === "device" ? DEVICE_HEAT_DELAY_MS : HEAT_DELAY_MS) {
    clearTimeout(heatTimer);
    heatmap.dataset.state = "loading";
    heatTimer = setTimeout(loadHeat, delay);
  }

  // The device's session already has every character's bits; the compressors' column is this browser's gzip.
  async function deviceHeat(text) {
    const { session } = await loadDevice();
    if (syncing) await syncing;
    if (session.text !== text) return null; // the text changed meanwhile: the next scheduled draw shows it
    const bytes = new TextEncoder().encode(text);
    const bits = session.totalBits;
    const gz = await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer();
    return {
      characters: session.characters().map((c) => ({ ...c, alternatives: null })),
      bits,
      bytes: bytes.length,
      chars: session.charBits.length,
      bits_per_byte: bits / bytes.length,
      compressors: { "gzip (this browser)": { bytes: gz.byteLength, bits_per_byte: (8 * gz.byteLength) / bytes.length } },
    };
  }

  async function loadHeat() {
    const text = input.value;
    const seq = ++heatSeq;
    if (!text) {
      drawHeat(text, null);
      setError("heat map", null);
      return;
    }
    heatmap.setAttribute("aria-busy", "true");
    try {
      const r = mode === "device" ? await deviceHeat(text) : await api("POST", "v1/surprisal", { text, top_k: ALTERNATIVES });
      if (r === null) return;
      if (seq !== heatSeq) return; // a newer text is on its way
      drawHeat(text, r);
      setError("heat map", null);
    } catch (err) {
      if (seq !== heatSeq) return;
      setError("heat map", err);
      drawHeat(text, null); // no stale colours for a text the server refused
      heatmap.dataset.state = "error";
    } finally {
      if (seq === heatSeq) heatmap.setAttribute("aria-busy", "false");
    }
  }

  function drawHeat(text, r) {
    heatChars = r ? r.characters : [];
    active = Math.min(active, heatChars.length - 1);
    const spans = heatChars.map((c, i) => {
      const span = document.createElement("span");
      const { background, text: fg } = colour(c.bits);
      span.textContent = c.char === " " ? " " : visible(c.char); // a coloured space reads as a space
      if (c.char === "\n") span.className = "nl"; // the ↵ stays visible and the line still breaks
      span.dataset.bits = String(c.bits);
      span.dataset.index = String(i);
      span.style.backgroundColor = background;
      span.style.color = fg;
      if (i === active) span.classList.add("active");
      return span;
    });
    heatmap.replaceChildren(...spans);
    heatmap.dataset.state = "ready";
    heatmap.dataset.text = text;
    showDetail(active);
    drawSummary(r);
  }

  function showDetail(i) {
    if (i < 0 || i >= heatChars.length) {
      delete detail.dataset.index;
      detail.textContent = heatChars.length ? "Hover or focus a character for its bits." : "\u00a0";
      return;
    }
    const c = heatChars[i];
    if (c.alternatives === null && device && device.session) {
      c.alternatives = []; // asked once; the answer redraws the line if it is still this character's
      device.session.predictAt(i, ALTERNATIVES).then((found) => {
        c.alternatives = found;
        if (heatChars[i] === c && detail.dataset.index === String(i)) showDetail(i);
      }).catch(() => {});
    }
    detail.dataset.index = String(i);
    const expected = c.alternatives.length
      ? ` The model expected ${c.alternatives.map((a) => `${named(a.char)} ${percent(a.prob)}`).join(", ")}.`
      : "";
    detail.textContent =
      `Character ${i + 1}: ${named(c.char)}, ${c.bits.toFixed(2)} bits (p = ${percent(2 ** -c.bits)}).${expected}`;
  }

  function setActive(i) {
    const old = heatmap.querySelector(".active");
    if (old) old.classList.remove("active");
    active = i;
    const span = heatmap.children[i];
    if (span) {
      span.classList.add("active");
      span.scrollIntoView({ block: "nearest" });
    }
    showDetail(i);
  }

  function drawSummary(r) {
    if (!r) {
      summary.replaceChildren();
      delete summary.dataset.bitsPerByte;
      delete summary.dataset.bits;
      return;
    }
    summary.dataset.bits = String(r.bits);
    summary.dataset.bitsPerByte = String(r.bits_per_byte);
    const line = document.createElement("p");
    line.textContent =
      `${r.chars} characters, ${r.bytes} bytes: ${r.bits.toFixed(1)} bits in total, ` +
      `${r.bits_per_byte.toFixed(3)} bits/byte, ${(r.bits / r.chars).toFixed(3)} bits/character.`;
    const table = document.createElement("table");
    table.createCaption().textContent = "The same text through general-purpose compressors (smaller is better)";
    const head = table.createTHead().insertRow();
    for (const h of ["", "bytes", "bits/byte"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.append(th);
    }
    const rows = [["lnrnn (this model)", r.bits / 8, r.bits_per_byte]];
    for (const [name, c] of Object.entries(r.compressors)) rows.push([name, c.bytes, c.bits_per_byte]);
    const body = table.createTBody();
    for (const [name, bytes, bpb] of rows) {
      const tr = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      tr.append(th);
      tr.insertCell().textContent = Number.isInteger(bytes) ? String(bytes) : bytes.toFixed(1);
      tr.insertCell().textContent = bpb.toFixed(3);
    }
    summary.replaceChildren(line, table);
  }

  // --- model and key ------------------------------------------------------------------------------

  // --- where it runs -------------------------------------------------------------------------------

  function megabytes(n) {
    return `${(n / 1e6).toFixed(2)} MB`;
  }

  function compressed(sizes) {
    const best = ["br_bytes", "gzip_bytes"].find((k) => sizes[k]);
    return best ? `, ${megabytes(sizes[best])} as ${best === "br_bytes" ? "brotli" : "gzip"}` : "";
  }

  /** The model on this device, loaded once per API key (the service worker keeps its files). */
  function loadDevice() {
    if (device && device.key === apiKey) return device.loading;
    const loading = workerReady.then(() => LnRnn.load(new URL(".", document.baseURI).href, { apiKey })).then((model) => {
      device.model = model;
      device.session = model.session();
      return device;
    });
    device = { key: apiKey, loading, model: null, session: null };
    loading.catch(() => {
      if (device && device.loading === loading) device = null; // try again on the next refresh
    });
    return loading;
  }

  function deviceLine(model) {
    const { model: m, runtime } = model.manifest;
    const name = m.precision === "int8w" ? "weight-only int8" : m.precision;
    const same = model.manifest.server.same_numbers ? "the server's numbers" : `the server runs ${model.manifest.server.precision}`;
    return `Runs on this device: ONNX Runtime Web ${runtime.version} (WebAssembly, 1 thread). ` +
      `Model ${m.file} (${name}; ${same}) ${megabytes(m.bytes)}${compressed(m)}; ` +
      `runtime ${megabytes(runtime.module.bytes + runtime.wasm.bytes)}` +
      `${compressed({ br_bytes: runtime.wasm.br_bytes && runtime.module.br_bytes + runtime.wasm.br_bytes,
        gzip_bytes: runtime.wasm.gzip_bytes && runtime.module.gzip_bytes + runtime.wasm.gzip_bytes })}; ` +
      `ready in ${(model.loadMs / 1000).toFixed(1)} s. Typing sends nothing to the server.`;
  }

  async function showWhere() {
    runsOn.dataset.mode = mode;
    for (const radio of runsOn.querySelectorAll("input")) radio.checked = radio.value === mode;
    if (mode === "server") {
      runsOn.dataset.state = "ready";
      where.textContent = "Runs on the server: each keystroke sends what was typed and gets the suggestions back.";
      return;
    }
    runsOn.dataset.state = "loading";
    where.textContent = "Loading the model onto this device…";
    try {
      const { model } = await loadDevice();
      if (mode !== "device") return;
      const m = model.manifest.model;
      $("model").textContent =
        `Model ${m.name}: ${m.config.cell.toUpperCase()} ${m.config.layers}×${m.config.hidden}, ${m.precision}, ` +
        `${m.valid_bpc == null ? "" : `validation ${m.valid_bpc.toFixed(3)} bits/byte, `}this device`;
      where.textContent = deviceLine(model);
      runsOn.dataset.state = "ready";
      setError("device", null);
    } catch (err) {
      if (mode !== "device") return;
      runsOn.dataset.state = "error";
      where.textContent = "The model could not be loaded onto this device; switch to the server.";
      setError("device", err);
    }
  }

  function setMode(next) {
    if (next === mode) return;
    mode = next;
    localStorage.setItem(MODE_STORE, mode);
    closeSession();
    shown = { text: null, candidates: [] };
    completed = { text: null, items: [] };
    restart = true;
    for (const source of ["device", "model", "suggestions", "heat map"]) setError(source, null);
    refresh();
  }

  async function loadModel() {
    if (mode === "device") return; // the manifest says what runs here (and works offline)
    try {
      const r = await api("GET", "v1/models");
      const m = r.models[0];
      $("model").textContent =
        `Model ${m.name}: ${m.cell.toUpperCase()} ${m.layers}×${m.hidden}, ${m.precision}, ` +
        `${m.valid_bpc == null ? "" : `validation ${m.valid_bpc.toFixed(3)} bits/byte, `}${m.provider}`;
      setError("model", null);
    } catch (err) {
      setError("model", err);
    }
  }

  function refresh() {
    restart = true;
    showWhere();
    loadModel();
    sync();
    scheduleHeat(0);
  }

  // --- events -------------------------------------------------------------------------------------

  function edited() {
    inputAt = performance.now();
    hidden = false;
    if (stopCompleting) stopCompleting.abort(); // its completions would be for the text before this edit
    if (composing) return;
    sync();
    scheduleHeat();
  }

  input.addEventListener("input", edited);
  input.addEventListener("compositionstart", () => {
    composing = true;
  });
  input.addEventListener("compositionend", () => {
    composing = false;
    edited();
  });

  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !hidden) {
      hidden = true;
      suggestions.replaceChildren();
      completions.replaceChildren();
      return;
    }
    if (e.key !== "Tab" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey || hidden) return;
    const atEnd = input.selectionStart === input.value.length && input.selectionEnd === input.value.length;
    if (!atEnd) return; // the suggestions follow the end of the text; elsewhere Tab moves focus as usual
    if (completed.text === input.value && completed.items.length) {
      e.preventDefault(); // a completion is shown: Tab takes it (markTab() labels it so)
      insertCompletion(completed.text, completed.items[0].text);
    } else if (shown.text === input.value && shown.candidates.length) {
      e.preventDefault();
      insert(shown.candidates[0].char);
    } else if (syncing) {
      e.preventDefault();
      acceptWhenReady = true; // suggestions for this text are on their way
    }
  });

  heatmap.addEventListener("mouseover", (e) => {
    const span = e.target.closest("span[data-index]");
    if (span) showDetail(Number(span.dataset.index));
  });
  heatmap.addEventListener("mouseleave", () => showDetail(active));
  heatmap.addEventListener("focus", () => {
    if (active < 0 && heatChars.length) setActive(0);
  });
  heatmap.addEventListener("keydown", (e) => {
    const last = heatChars.length - 1;
    const moves = { ArrowRight: active + 1, ArrowLeft: active - 1, Home: 0, End: last };
    if (!(e.key in moves) || last < 0) return;
    e.preventDefault();
    setActive(Math.max(0, Math.min(last, moves[e.key])));
  });

  keyField.value = apiKey;
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    apiKey = keyField.value.trim();
    if (apiKey) sessionStorage.setItem(KEY_STORE, apiKey);
    else sessionStorage.removeItem(KEY_STORE);
    refresh();
  });

  window.addEventListener("pagehide", () => closeSession(true));

  runsOn.addEventListener("change", (e) => setMode(e.target.value));
  if (!canRunHere) {
    runsOn.querySelector('input[value="device"]').disabled = true;
  }
  drawLegend();
  refresh();
}
