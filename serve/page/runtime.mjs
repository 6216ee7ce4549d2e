// `npm ci` runs this (package.json "postinstall"): it lays out the few ONNX Runtime Web files the page loads,
// precompressed, where `lnrnn serve` finds them (LNRNN_WEB_DIR, default node_modules/.lnrnn-web).
//
//   ort.wasm.bundle.min.mjs       the WebAssembly-only build with its loader inlined (one module, no workers
//                                 needed with numThreads = 1)
//   ort-wasm-simd-threaded.wasm   the CPU kernels (this one file also runs single-threaded)
//
// Each gets a .gz (gzip -9) and a .br (brotli, quality 9, 16 MiB window) beside it: the server sends the one
// the browser accepts and never compresses these at request time. runtime.json says which file is which and
// the package version; the server serves only the files named there, from a fixed map.
// Usage: node serve/page/runtime.mjs [OUT_DIR]
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = resolve(process.argv[2] || join(root, "node_modules", ".lnrnn-web"));
const packageDir = join(root, "node_modules", "onnxruntime-web");
const { version } = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
const FILES = { module: "ort.wasm.bundle.min.mjs", wasm: "ort-wasm-simd-threaded.wasm" };

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const files = {};
for (const [role, name] of Object.entries(FILES)) {
  const data = readFileSync(join(packageDir, "dist", name));
  const gz = zlib.gzipSync(data, { level: 9 });
  const br = zlib.brotliCompressSync(data, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: 9,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  writeFileSync(join(out, name), data);
  writeFileSync(join(out, `${name}.gz`), gz);
  writeFileSync(join(out, `${name}.br`), br);
  files[role] = {
    name,
    bytes: data.length,
    gzip_bytes: gz.length,
    br_bytes: br.length,
    sha256: createHash("sha256").update(data).digest("hex"),
  };
  console.log(`${name}: ${data.length} bytes, gzip ${gz.length}, br ${br.length}`);
}
writeFileSync(join(out, "runtime.json"), `${JSON.stringify({ package: "onnxruntime-web", version, files }, null, 2)}\n`);
console.log(`onnxruntime-web ${version} -> ${out}`);
