import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { KERNEL_WASM, SIMD_PROBE_WASM } from '../../../functions/shared/engine/kernel.wasm.ts';
import {
  compileKernel,
  type WasmApi,
  WasmKernelInvalid,
  wasmSimdAvailable,
} from '../../../functions/shared/engine/lcs-wasm.ts';
import { KERNEL_MODULE, renderKernelModule } from '../../../infra/tools/assemble-kernel.ts';

const kernel = Buffer.from(KERNEL_WASM, 'base64');
const probe = Buffer.from(SIMD_PROBE_WASM, 'base64');
const api = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
const pick = ({ validate, Module, Instance, Memory }: WasmApi): WasmApi => ({
  validate,
  Module,
  Instance,
  Memory,
});

describe('the WebAssembly kernel', () => {
  it('is kernel.wat as wabt assembles it (run `npm run build:kernel` after editing the WAT)', async () => {
    expect(await readFile(KERNEL_MODULE, 'utf8')).toBe(await renderKernelModule());
  });

  it('compiles on this runtime, which has SIMD', () => {
    expect(compileKernel(api, kernel, probe)).not.toBeNull();
    expect(wasmSimdAvailable()).toBe(true);
  });

  it('throws, rather than falling back, when a runtime with SIMD cannot compile it', () => {
    const broken = kernel.subarray(0, kernel.length - 1);

    expect(() => compileKernel(api, broken, probe)).toThrow(WasmKernelInvalid);
    expect(() => compileKernel(api, broken, probe)).toThrow(/npm run build:kernel/);
  });

  it('leaves the JavaScript kernel to a runtime without SIMD or without WebAssembly', () => {
    const withoutSimd: WasmApi = { ...pick(api), validate: () => false };

    expect(compileKernel(withoutSimd, kernel, probe)).toBeNull();
    expect(compileKernel(undefined, kernel, probe)).toBeNull();
  });
});
