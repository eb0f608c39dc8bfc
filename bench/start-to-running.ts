/**
 * Time from the `start` command to the domain reported running in the view, through the whole system
 * (command service, dispatcher, host agent, QEMU driver, report, projector), next to the same qemu
 * command line launched directly (the raw cost), interleaved in the same run.
 *
 *   node --import tsx bench/start-to-running.ts [--iterations 9]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtplaneClient } from '../client/index.ts';
import { formatDomainXml } from '../contracts/xml/index.ts';
import { qemuAvailable } from '../drivers/qemu/host.ts';
import { startNatsServer } from '../platform/nats-server.ts';
import { connectNats } from '../platform/nats.ts';
import { provision } from '../platform/provision.ts';
import { spawnService } from '../platform/service-process.ts';
import { benchDomain, median, rawQemuStartOnce } from './qemu-start.ts';

const i = process.argv.indexOf('--iterations');
const iterations = i > 0 ? Number(process.argv[i + 1]) : 9;
const avail = await qemuAvailable();
if (!avail.ok) {
  console.error(`qemu is not available: ${avail.reason}`);
  process.exit(1);
}

const server = await startNatsServer();
const n = await connectNats(server.url, 'bench');
await provision(n);
const dataDir = await mkdtemp(join(tmpdir(), 'vp-bench-start-'));
const work = await mkdtemp(join(tmpdir(), 'vp-bench-raw-'));
const env = { VIRTPLANE_NATS_URL: server.url, VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_HOST_ID: 'bench-host', VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_LOG_LEVEL: 'info' };
const procs = [];
for (const s of ['command', 'projector', 'host-agent'] as const) {
  const p = spawnService(s, env);
  await p.ready;
  procs.push(p);
}
const client = VirtplaneClient.over(n, { actor: 'bench' });
const def = await benchDomain('bench-start');
const raw: number[] = [];
const full: number[] = [];
try {
  await client.define({ xml: formatDomainXml(def) });
  const viaSystem = async () => {
    const t = performance.now();
    const accepted = await client.start('bench-start');
    const v = await client.outcome(accepted, 120_000);
    const ms = performance.now() - t;
    if (v.observed.state !== 'running') throw new Error(`not running: ${JSON.stringify(v.observed)}`);
    await client.outcome(await client.destroy('bench-start'), 120_000);
    return ms;
  };
  // Warm both paths: page cache for qemu and the guest, JIT in every service.
  await rawQemuStartOnce(def, work);
  await viaSystem();
  for (let k = 0; k < iterations; k++) {
    if (k % 2 === 0) {
      raw.push(await rawQemuStartOnce(def, work));
      full.push(await viaSystem());
    } else {
      full.push(await viaSystem());
      raw.push(await rawQemuStartOnce(def, work));
    }
  }
} finally {
  for (const p of procs.reverse()) await p.stop();
  await n.close();
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
}
const r = median(raw);
const f = median(full);
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(' ');
console.log(`qemu ${avail.version} (${avail.kvm ? 'kvm' : 'tcg'}), ${def.memoryKiB / 1024} MiB guest, ${iterations} iterations`);
console.log(`raw qemu command line    spawn -> running  median ${r.toFixed(1)} ms   [${fmt(raw)}]`);
console.log(`virtplane start command  start -> running  median ${f.toFixed(1)} ms   [${fmt(full)}]`);
console.log(`start overhead: ${(f - r).toFixed(1)} ms, ratio ${(f / r).toFixed(2)}x`);
