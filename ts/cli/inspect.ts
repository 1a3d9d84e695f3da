/** `puzzle inspect`: what this machine and this build offer (for bug reports and sanity). */
import { cpus, platform, release, totalmem } from 'node:os';
import type { Command } from 'commander';
import { addonPath, buildSummary, loadAddon } from '../native/loader.js';

export function inspectReport() {
  const addon = loadAddon();
  return {
    node: process.version,
    os: `${platform()} ${release()}`,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    cpu: { ...addon.engineInfo(), logicalCores: cpus().length },
    addon: { path: addonPath, build: buildSummary() },
    cuda: addon.cudaInfo(),
  };
}

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('Node, OS, CPU features and threads, the addon build that loaded, the CUDA module and GPU probe')
    .option('--json', 'print one JSON object')
    .action((o: { json?: boolean }) => {
      const r = inspectReport();
      if (o.json) return console.log(JSON.stringify(r, null, 2));
      console.log(`node      ${r.node} on ${r.os}, ${r.memoryGiB} GiB`);
      console.log(`cpu       ${r.cpu.cpuModel}: ${r.cpu.logicalCores} logical cores, engine uses ${r.cpu.threads} threads`);
      console.log(`features  ${r.cpu.features.join(' ')}`);
      console.log(`kernels   ${r.cpu.isa} path (PUZZLE_ISA caps it), GEMM ${r.cpu.gemmKernel}`);
      console.log(`addon     ${r.addon.path}`);
      console.log(`build     ${r.addon.build.replace(/\n/g, '; ')}`);
      console.log(`cuda      module ${r.cuda.moduleBuilt ? (r.cuda.moduleLoaded ? 'loaded' : 'present but not loaded') : 'not built'}; ${r.cuda.devices} device(s): ${r.cuda.description}`);
    });
}
