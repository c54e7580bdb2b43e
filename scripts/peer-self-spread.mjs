// llama.cpp against itself: the log-probs of one GGUF file and one token sequence, evaluated in
// one batch and with one call per token (llama.cpp's batched kernels against its one-token ones),
// through the node-llama-cpp install of ../shared/peer/llamacpp (scripts/peer-self-spread.sh
// copies this file there and runs it). f32 KV cache, flash attention off, 1 thread.
//   node peer-self-spread.mjs MODEL.gguf "id,id,..."
// Prints one JSON line: positions, the largest |Δ log-prob| over the whole vocabulary, the first
// position where it exceeds 1e-4, and every position whose best token differs, with the batch
// run's gap between its two best.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
const [modelPath, toks] = process.argv.slice(2);
const tokens = toks.split(",").map(Number);
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, maxThreads: 1, logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
async function run(stepwise) {
  const ctx = await model.createContext({contextSize: tokens.length + 16, threads: 1, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
  const seq = ctx.getSequence(), want = t => [t, {generateNext: {probabilities: true}}];
  let out = [];
  if (stepwise) for (const t of tokens) out.push(...(await seq.controlledEvaluate([want(t)])));
  else out = await seq.controlledEvaluate(tokens.map(want));
  await ctx.dispose();
  return out.map(o => o.next.probabilities);
}
const batch = await run(false), step = await run(true);
let maxAbs = 0, firstOff = null;
const flips = [];
for (let i = 0; i < batch.length; ++i) {
  let d = 0;
  for (const [t, p] of batch[i]) d = Math.max(d, Math.abs(Math.log(p) - Math.log(step[i].get(t) ?? 0)));
  maxAbs = Math.max(maxAbs, d);
  if (firstOff === null && d > 1e-4) firstOff = i;
  const best = m => [...m.entries()].sort((a, b) => b[1] - a[1]);
  const b = best(batch[i]), s = best(step[i]);
  if (b[0][0] !== s[0][0]) flips.push({pos: i, gap: +(Math.log(b[0][1]) - Math.log(b[1][1])).toFixed(5)});
}
console.log(JSON.stringify({model: modelPath.split("/").pop(), positions: batch.length, max_abs: maxAbs,
  first_above_1e4: firstOff, top1_flips: flips}));
await model.dispose(); await llama.dispose();
