// llama.cpp's decode speed at a depth (llama-bench's -d), through the node-llama-cpp install of
// ../shared/peer/llamacpp (scripts/bench-depth.sh copies this file there and runs it):
//   node peer-depth.mjs MODEL.gguf [threads=1] [depth=1024] [genLen=32] [reps=3] [kv=F16] [flash=0]
// The context is filled once with `depth` pseudo-random tokens (untimed); each repetition erases
// what the last one added, decodes one untimed token, then genLen single-token steps (greedy),
// timed together, as `smelt bench -d` does. kv: the K and V cache type (F32, F16, Q8_0);
// flash: 1 for flash attention. Prints one JSON line: tg tokens/s mean/std/best.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
const [modelPath, thrS = "1", dS = "1024", gS = "32", rS = "3", kv = "F16", flS = "0"] = process.argv.slice(2);
if (!modelPath) { console.error("usage: node peer-depth.mjs MODEL.gguf [threads] [depth] [genLen] [reps] [kv] [flash]"); process.exit(1); }
const threads = +thrS, D = +dS, G = +gS, R = +rS, flash = flS === "1";
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
  maxThreads: threads, logLevel: LlamaLogLevel.error, progressLogs: false});
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: true});
const ctx = await model.createContext({contextSize: D + G + 64, batchSize: 512, sequences: 1,
  threads: {ideal: threads, min: threads}, flashAttention: flash,
  experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv});
const seq = ctx.getSequence();
const nv = model.tokens?.vocabSize ?? 512;
let s = 12345; const rnd = () => (s = (s * 1103515245 + 12345) & 0x7fffffff);
const lo = Math.min(259, nv - 1);
const tokens = Array.from({length: D + 2}, () => lo + rnd() % (nv - lo));
if (D > 0) await seq.evaluateWithoutGeneratingNewTokens(tokens.slice(0, D));
async function runTG() {
  if (seq.nextTokenIndex > D) await seq.eraseContextTokenRanges([{start: D, end: seq.nextTokenIndex}]);
  await seq.evaluateWithoutGeneratingNewTokens([tokens[D]]);
  let n = 0; const t0 = performance.now();
  for await (const tok of seq.evaluate([tokens[D + 1]], {temperature: 0, yieldEogToken: true})) { if (++n >= G) break; }
  return n / ((performance.now() - t0) / 1e3);
}
await runTG();  // warm-up
const tg = [];
for (let r = 0; r < R; r++) tg.push(await runTG());
const m = tg.reduce((x, y) => x + y, 0) / tg.length;
const std = Math.sqrt(tg.reduce((x, y) => x + (y - m) ** 2, 0) / tg.length);
console.log(JSON.stringify({model: modelPath.split("/").pop(), threads, depth: D, genLen: G, reps: R, kv, flash,
  tg_tok_s: {mean: +m.toFixed(2), std: +std.toFixed(2), best: +Math.max(...tg).toFixed(2)}}));
await ctx.dispose(); await model.dispose(); await llama.dispose();
