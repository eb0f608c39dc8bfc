/**
 * Command throughput and latency for define+start on distinct domains with 64 requests in flight,
 * next to raw JetStream publish-with-ack throughput on the same server in the same run, and the same
 * lifecycle cycles through libvirt's own test driver (one virsh process reading many commands).
 *
 *   node --import tsx bench/command-throughput.ts [--domains 2000] [--cycles 300] [--ask-views]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { VirtplaneClient } from '../client/index.ts';
import { freePort, startNatsServer } from '../platform/nats-server.ts';
import { cpuLine, Meter, type PhaseCost } from './measure.ts';
import { connectNats, type Nats } from '../platform/nats.ts';
import { provision } from '../platform/provision.ts';
import { spawnService } from '../platform/service-process.ts';
import { call } from '../platform/rpc.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const DOMAINS = arg('domains', 2000);
/** Which services run during the measurement: all of them by default, as in production. */
const SERVICES = (process.argv.includes('--command-only') ? ['command'] : ['command', 'projector', 'host-agent']) as Array<'command' | 'projector' | 'host-agent'>;
const CYCLES = arg('cycles', 300);
const IN_FLIGHT = 64;
/** How start and destroy are waited for: the reply carries the recorded outcome (`--ask-views`: asked of the views after the reply, as before). */
const WAITED = process.argv.includes('--ask-views') ? {} : { waitMs: 5000 };

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

/** Runs `count` jobs with `width` of them in flight; returns per-job latencies in ms. */
const pool = async (count: number, width: number, job: (i: number) => Promise<number[]>): Promise<number[]> => {
  const lat: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) lat.push(...(await job(next++)));
    }),
  );
  return lat;
};

const timed = async (fn: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

const rawPublish = async (n: Nats, count: number) => {
  await n.jsm.streams.add({ name: 'BENCH', subjects: ['bench.>'], storage: StorageType.File, retention: RetentionPolicy.Limits });
  const body = new TextEncoder().encode(JSON.stringify({ commandId: 'x'.repeat(36), events: [{ type: 'DomainStartRequested', data: { hostId: 'h', deadline: new Date().toISOString() } }] }));
  const t = performance.now();
  const lat = await pool(count, IN_FLIGHT, async (i) => [await timed(() => n.js.publish(`bench.${i % 1000}`, body))]);
  const secs = (performance.now() - t) / 1000;
  await n.jsm.streams.delete('BENCH');
  return { perSec: count / secs, p50: pct(lat, 50), p99: pct(lat, 99) };
};

const virshCycles = async (cycles: number) => {
  if (spawnSync('virsh', ['--version']).status !== 0) return null;
  const dir = await mkdtemp(join(tmpdir(), 'virsh-bench-'));
  const script: string[] = [];
  for (let i = 0; i < cycles; i++) {
    const file = join(dir, `d${i}.xml`);
    await writeFile(file, `<domain type='test'><name>bench-${i}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`);
    script.push(`define ${file}`, `start bench-${i}`, `destroy bench-${i}`, `undefine bench-${i}`);
  }
  script.push('quit');
  const t = performance.now();
  await new Promise<void>((resolve, reject) => {
    const p = spawn('virsh', ['-q', '-c', 'test:///default'], { stdio: ['pipe', 'ignore', 'inherit'] });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`virsh exited ${code}`))));
    p.stdin.end(`${script.join('\n')}\n`);
  });
  const secs = (performance.now() - t) / 1000;
  await rm(dir, { recursive: true, force: true });
  return cycles / secs;
};

const main = async () => {
  const monitorPort = await freePort();
  const server = await startNatsServer({ args: ['-m', String(monitorPort)] });
  const n = await connectNats(server.url, 'bench');
  await provision(n);
  const env = { VIRTPLANE_NATS_URL: server.url, VIRTPLANE_HOST_ID: 'bench-host', VIRTPLANE_DRIVER: 'test', VIRTPLANE_DATA_DIR: await mkdtemp(join(tmpdir(), 'vp-bench-')), VIRTPLANE_LOG_LEVEL: 'warn' };
  const procs = [];
  for (const s of SERVICES) {
    const p = spawnService(s, { ...env, VIRTPLANE_LOG_LEVEL: 'info' });
    await p.ready;
    procs.push(p);
  }
  const meter = new Meter(monitorPort, [
    ...procs.map((p) => ({ name: p.name, pid: p.child.pid! })),
    { name: 'nats-server', pid: server.pid },
    { name: 'bench client', pid: process.pid },
  ]);
  const client = VirtplaneClient.over(n, { actor: 'bench' });
  if (SERVICES.length === 1) {
    // No host agent runs: register the host the way an agent would, so placement has somewhere to go.
    await call(n.nc, 'agent.bench-host.register', {
      hostId: 'bench-host', hostname: 'bench', instanceId: 'bench', agentVersion: 'bench',
      capabilities: { driver: 'test', domainTypes: ['test'], cpus: 1, memoryKiB: 1 << 20, features: {} },
    });
  }
  const def = (name: string) => ({ definition: { name, memoryKiB: 65536, vcpus: 1 } });
  try {
    // Warm both paths so neither pays for JIT or first-use costs inside its measurement.
    await rawPublish(n, 2000);
    await pool(100, IN_FLIGHT, async (i) => [await timed(() => client.define(def(`warm-${i}`)))]);

    const raw = await rawPublish(n, DOMAINS * 2);

    // Domains reach running when their `started` lifecycle event is out (the projector publishes it
    // with the view that shows them running).
    const running = new Set<string>();
    let lastRunningAt = 0;
    const feedStop = new AbortController();
    const feed = (async () => {
      for await (const e of client.lifecycle({ signal: feedStop.signal })) {
        if (e.event === 'STARTED' && e.name.startsWith('bench-')) {
          running.add(e.name);
          lastRunningAt = performance.now();
        }
      }
    })().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));

    const t = performance.now();
    const lat = await pool(DOMAINS, IN_FLIGHT, async (i) => {
      const a = await timed(() => client.define(def(`bench-${i}`)));
      const b = await timed(() => client.start(`bench-${i}`));
      return [a, b];
    });
    const cmdSecs = (performance.now() - t) / 1000;
    const cmdPerSec = (DOMAINS * 2) / cmdSecs;
    const ratio = cmdPerSec / raw.perSec;

    const rawLine = `raw JetStream publish-with-ack: ${raw.perSec.toFixed(0)} msg/s (p50 ${raw.p50.toFixed(2)} ms, p99 ${raw.p99.toFixed(2)} ms), ${IN_FLIGHT} in flight`;
    if (SERVICES.length === 1) {
      console.log(rawLine);
      console.log(`virtplane define+start, command service only: ${cmdPerSec.toFixed(0)} commands/s (p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms)`);
      console.log(`command/raw throughput ratio: ${ratio.toFixed(2)} (command service only)`);
      return;
    }
    const waitUntil = Date.now() + 300_000;
    while (running.size < DOMAINS && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 50));
    feedStop.abort();
    await feed;
    const runningPerSec = running.size / ((lastRunningAt - t) / 1000);
    const backlogMs = lastRunningAt - t - cmdSecs * 1000;

    await meter.measureIdle();
    const OPS = Math.min(DOMAINS, 500);
    const names = Array.from({ length: OPS }, (_, i) => `op-${i}`);
    const each = (job: (name: string) => Promise<unknown>) => () => pool(OPS, IN_FLIGHT, async (i) => [await timed(() => job(names[i]!))]).then(() => undefined);
    const define = await meter.phase(OPS, each((name) => client.define(def(name))));
    // Waited for as a service would: the command's reply is held until the outcome is recorded (`waitMs`).
    const start = await meter.phase(OPS, each(async (name) => client.outcome(await client.start(name, WAITED), 60_000)));
    const destroy = await meter.phase(OPS, each(async (name) => client.outcome(await client.destroy(name, WAITED), 60_000)));
    const undefine = await meter.phase(OPS, each((name) => client.undefine(name)));

    // No backlog from the phases before: each phase above ended with the system quiet.
    const cycle = await meter.phase(CYCLES, () =>
      pool(CYCLES, IN_FLIGHT, async (i) => {
        const name = `cycle-${i}`;
        await client.define(def(name));
        await client.outcome(await client.start(name, WAITED), 60_000);
        await client.outcome(await client.destroy(name, WAITED), 60_000);
        await client.undefine(name);
        return [];
      }).then(() => undefined),
    );
    const virsh = await virshCycles(CYCLES);

    console.log(rawLine);
    console.log(`virtplane define+start:         ${cmdPerSec.toFixed(0)} commands accepted/s (p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms), ${DOMAINS} domains`);
    console.log(`  domains reaching running:     ${runningPerSec.toFixed(0)}/s (${running.size} of ${DOMAINS}; last one ${Math.max(0, backlogMs).toFixed(0)} ms after the last command was accepted); ${(runningPerSec / (cmdPerSec / 2)).toFixed(2)} of the accepted rate`);
    console.log(`per operation, ${OPS} each, ${IN_FLIGHT} in flight, waited for (start/destroy: ${WAITED.waitMs ? 'the reply held until the outcome is recorded' : 'until the view shows the outcome'}), system quiet before and after:`);
    for (const [what, c] of [['define', define], ['start', start], ['destroy', destroy], ['undefine', undefine], ['cycle', cycle]] as const) {
      console.log(`  ${what.padEnd(8)} ${c.perOp.toFixed(1).padStart(6)} msgs; CPU ms/op: ${cpuLine(c)}`);
    }
    console.log(`lifecycle cycles (define, start, destroy, undefine; each op waited for; no backlog before):`);
    console.log(`  virtplane, test driver via NATS: ${cycle.opsPerSec.toFixed(1)} cycles/s (${IN_FLIGHT} in flight)`);
    console.log(`  virsh -c test:///default:        ${virsh === null ? 'virsh not installed' : `${virsh.toFixed(1)} cycles/s (one virsh process)`}`);
    const r = (c: PhaseCost) => Math.round(c.perOp);
    console.log(`messages per op: define ${r(define)}, start ${r(start)}, destroy ${r(destroy)}, undefine ${r(undefine)}, cycle ${r(cycle)}`);
    console.log(`command/raw throughput ratio: ${ratio.toFixed(2)}`);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await n.close();
    await server.stop();
    await rm(env.VIRTPLANE_DATA_DIR, { recursive: true, force: true });
  }
};

await main();
