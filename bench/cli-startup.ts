/**
 * How long a CLI command takes from a shell, and how long a service takes to start, built (dist/,
 * plain node) against from sources (tsx), all in one run:
 * - `virtplane --help` and `virtplane list` (against a running system with 20 domains) next to
 *   `node -e 0` (the floor every Node program pays) and `virsh -c test:///default list`;
 * - each service from spawn to ready, and its resident memory once ready.
 *
 *   node --import tsx bench/cli-startup.ts [--runs 15] [--starts 3]
 *
 * The built CLI and services are those `npm run build` wrote (run it first).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../platform/config.ts';
import { isBuilt, programArgs } from '../platform/runtime.ts';
import { spawnService, SERVICE_NAMES } from '../platform/service-process.ts';
import { startStack } from '../test/fixtures/stack.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const runs = arg('--runs', 15);
const starts = arg('--starts', 3);
if (!isBuilt()) {
  console.error('dist/ is not built: run `npm run build` first');
  process.exit(1);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const timeOnce = (cmd: string, args: string[], env: Record<string, string>) =>
  new Promise<number>((resolve, reject) => {
    const t = performance.now();
    execFile(cmd, args, { env: { ...process.env, ...env } }, (err) => (err ? reject(err) : resolve(performance.now() - t)));
  });

const virshAvailable = await timeOnce('virsh', ['-c', 'test:///default', 'list'], {}).then(
  () => true,
  () => false,
);

const stack = await startStack({ fromSource: false });
const env = { VIRTPLANE_NATS_URL: stack.nats.url };
for (let k = 0; k < 20; k++) await stack.client.define({ definition: { name: `bench-cli-${k}`, memoryKiB: 65536, vcpus: 1 } });

const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');
const cases: Array<{ name: string; run: () => Promise<number> }> = [
  { name: '`node -e 0` (baseline)', run: () => timeOnce(process.execPath, ['-e', '0'], {}) },
  { name: '`virtplane --help` (dist)', run: () => timeOnce(process.execPath, [CLI, '--help'], env) },
  { name: '`virtplane list --all` (dist, 20 domains)', run: () => timeOnce(process.execPath, [CLI, 'list', '--all'], env) },
  { name: '`virtplane --help` (sources under tsx)', run: () => timeOnce(process.execPath, programArgs('cli', true).concat('--help'), env) },
  { name: '`virtplane list --all` (sources under tsx)', run: () => timeOnce(process.execPath, programArgs('cli', true).concat('list', '--all'), env) },
  ...(virshAvailable ? [{ name: '`virsh -c test:///default list`', run: () => timeOnce('virsh', ['-c', 'test:///default', 'list'], {}) }] : []),
];
const times = new Map(cases.map((c) => [c.name, [] as number[]]));
// Interleaved, so load on the machine falls on every case alike; one warm-up round first.
for (const c of cases) await c.run();
for (let r = 0; r < runs; r++) for (const c of cases) times.get(c.name)!.push(await c.run());

const rssKiB = (pid: number) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
const services: Array<{ name: string; fromSource: boolean; ready: number[]; rss: number[] }> = [];
for (const name of SERVICE_NAMES) for (const fromSource of [true, false]) services.push({ name, fromSource, ready: [], rss: [] });
const dataDir = await mkdtemp(join(tmpdir(), 'vp-bench-svc-'));
const svcEnv = { ...stack.env, VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_HOST_ID: 'bench-host', VIRTPLANE_LOG_LEVEL: 'warn' };
for (let k = 0; k < starts; k++) {
  for (const s of services) {
    const t = performance.now();
    const p = spawnService(s.name as (typeof SERVICE_NAMES)[number], svcEnv, { fromSource: s.fromSource, label: `${s.name}-bench` });
    await p.ready;
    s.ready.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 500));
    s.rss.push(rssKiB(p.child.pid!));
    await p.stop('SIGTERM');
  }
}
await rm(dataDir, { recursive: true, force: true });
await stack.stop();

const base = median(times.get(cases[0]!.name)!);
console.log(`\n${runs} runs each, interleaved; median wall time from spawn to exit\n`);
console.log('| command | median | ratio to `node -e 0` |\n|---|---:|---:|');
for (const c of cases) {
  const m = median(times.get(c.name)!);
  console.log(`| ${c.name} | ${m.toFixed(0)} ms | ${(m / base).toFixed(2)} |`);
}
console.log(`\nservices: ${starts} starts each, spawn to ready (IPC), resident memory 0.5 s after ready\n`);
console.log('| service | tsx: ready | dist: ready | tsx: RSS | dist: RSS |\n|---|---:|---:|---:|---:|');
for (const name of SERVICE_NAMES) {
  const tsx = services.find((s) => s.name === name && s.fromSource)!;
  const dist = services.find((s) => s.name === name && !s.fromSource)!;
  console.log(`| ${name} | ${median(tsx.ready).toFixed(0)} ms | ${median(dist.ready).toFixed(0)} ms | ${(median(tsx.rss) / 1024).toFixed(0)} MiB | ${(median(dist.rss) / 1024).toFixed(0)} MiB |`);
}
const list = median(times.get(cases[2]!.name)!);
console.log(`\nlist/node -e 0 ratio: ${(list / base).toFixed(2)} (target: within 3)`);
