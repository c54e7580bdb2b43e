// llama.cpp's decode speed at a depth (llama-bench's -d), through the node-llama-cpp install of
// ../shared/peer/llamacpp (scripts/bench-depth.sh copies this file there and runs it):
//   node peer-depth.mjs MODEL.gguf [threads=1] [depth=1024] [genLen=32] [reps=3] [kv=F16] [flash=0] [promptLen=0]
// The context is filled once with `depth` pseudo-random tokens (untimed); each repetition erases
// what the last one added, then (promptLen > 0) evaluates promptLen tokens in one batch, timed (pp),
// erases them, decodes one untimed token, then genLen single-token steps (greedy), timed together
// (tg), as `smelt bench -d` does. kv: the K and V cache type (F32, F16, Q8_0); flash: 1 for flash
// attention. Prints one JSON line: pp and tg tokens/s mean/std/best.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
const [modelPath, thrS = "1", dS = "1024", gS = "32", rS = "3", kv = "F16", flS = "0", pS = "0"] = process.argv.slice(2);
if (!modelPath) { console.error("usage: node peer-depth.mjs MODEL.gguf [threads] [depth] [genLen] [reps] [kv] [flash] [promptLen]"); process.exit(1); }
const threads = +thrS, D = +dS, G = +gS, R = +rS, flash = flS === "1", P = +pS;
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
  maxThreads: threads, logLevel: LlamaLogLevel.error, progressLogs: false});
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
const ctx = await model.createContext({contextSize: D + Math.max(P, G) + 64, batchSize: 512, sequences: 1,
  threads: {ideal: threads, min: threads}, flashAttention: flash,
  experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv});
const seq = ctx.getSequence();
const nv = model.tokens?.vocabSize ?? 512;
let s = 12345; const rnd = () => (s = (s * 1103515245 + 12345) & 0x7fffffff);
const lo = Math.min(259, nv - 1);
const tokens = Array.from({length: D + Math.max(P, 2)}, () => lo + rnd() % (nv - lo));
if (D > 0) await seq.evaluateWithoutGeneratingNewTokens(tokens.slice(0, D));
async function rewind() {
  if (seq.nextTokenIndex > D) await seq.eraseContextTokenRanges([{start: D, end: seq.nextTokenIndex}]);
}
async function runPP() {
  await rewind();
  const t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(tokens.slice(D, D + P));
  return P / ((performance.now() - t0) / 1e3);
}
async function runTG() {
  await rewind();
  await seq.evaluateWithoutGeneratingNewTokens([tokens[D]]);
  let n = 0; const t0 = performance.now();
  for await (const tok of seq.evaluate([tokens[D + 1]], {temperature: 0, yieldEogToken: true})) { if (++n >= G) break; }
  return n / ((performance.now() - t0) / 1e3);
}
if (P > 0) await runPP();  // warm-up
if (G > 0) await runTG();
const pp = [], tg = [];
for (let r = 0; r < R; r++) { if (P > 0) pp.push(await runPP()); if (G > 0) tg.push(await runTG()); }
const stats = a => { const m = a.reduce((x, y) => x + y, 0) / a.length; return {mean: +m.toFixed(2), std: +Math.sqrt(a.reduce((x, y) => x + (y - m) ** 2, 0) / a.length).toFixed(2), best: +Math.max(...a).toFixed(2)}; };
console.log(JSON.stringify({model: modelPath.split("/").pop(), threads, depth: D, promptLen: P, genLen: G, reps: R, kv, flash,
  pp_tok_s: P > 0 ? stats(pp) : null, tg_tok_s: G > 0 ? stats(tg) : null}));
await ctx.dispose(); await model.dispose(); await llama.dispose();
