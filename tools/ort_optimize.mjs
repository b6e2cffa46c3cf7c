// Let onnxruntime's own graph optimizer (level "basic", which includes its
// Conv+BatchNormalization fusion) write the optimized model, for tools/bench.
//   node tools/ort_optimize.mjs IN.onnx OUT.onnx
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'package.json'));
const ort = require('onnxruntime-node');
const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node tools/ort_optimize.mjs IN.onnx OUT.onnx');
  process.exit(2);
}
const session = await ort.InferenceSession.create(input, {
  graphOptimizationLevel: 'basic',
  optimizedModelFilePath: output,
  executionProviders: ['cpu'],
  logSeverityLevel: 3,
});
await session.release();
