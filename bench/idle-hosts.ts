/**
 * What an idle host costs the server: NATS messages per second (in + out, every connection, from
 * the monitoring endpoint) with the command service and the projector running and no host, then with
 * `--hosts` host agents (test driver, their own processes, default lease timings) registered and
 * nothing asked of them. The difference, per host, is the price of staying alive: lease renewals, the
 * watchers that follow them, the agent's pull consumers and its periodic looks at its own domains.
 *
 *   node --import tsx bench/idle-hosts.ts [--hosts 4] [--seconds 20]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEARTBEAT_INTERVAL_MS } from '../contracts/host/liveness.ts';
import { freePort, startNatsServer } from '../platform/nats-server.ts';
import { connectNats } from '../platform/nats.ts';
import { provision } from '../platform/provision.ts';
import { spawnService, type ServiceProcess } from '../platform/service-process.ts';
import { cpuMs, Meter } from './measure.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const HOSTS = arg('hosts', 4);
const SECONDS = arg('seconds', 20);

interface Conn {
  name: string;
  in_msgs: number;
  out_msgs: number;
}

const connz = async (port: number): Promise<Map<string, number>> => {
  const r = (await (await fetch(`http://127.0.0.1:${port}/connz?limit=1000`)).json()) as { connections: Conn[] };
  const out = new Map<string, number>();
  for (const c of r.connections) {
    // One line per kind of connection: the hosts' agents are summed.
    const name = c.name?.startsWith('virtplane-host-agent-') ? 'host agents' : (c.name ?? '?');
    out.set(name, (out.get(name) ?? 0) + c.in_msgs + c.out_msgs);
  }
  return out;
};

/** Messages per second over `seconds`, in total and by connection, and the CPU ms per second of each process. */
const window = async (meter: Meter, port: number, procs: ServiceProcess[], seconds: number) => {
  const c0 = await connz(port);
  const m0 = await meter.messages();
  const cpu0 = procs.map((p) => cpuMs(p.child.pid!));
  const t = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const secs = (performance.now() - t) / 1000;
  const total = ((await meter.messages()) - m0) / secs;
  const c1 = await connz(port);
  const byConn = [...c1].map(([name, v]) => ({ name, perSec: (v - (c0.get(name) ?? 0)) / secs })).sort((a, b) => b.perSec - a.perSec);
  const cpu = procs.map((p, i) => ({ name: p.name, msPerSec: (cpuMs(p.child.pid!) - cpu0[i]!) / secs }));
  return { total, byConn, cpu };
};

const main = async () => {
  const monitorPort = await freePort();
  const server = await startNatsServer({ args: ['-m', String(monitorPort)] });
  const n = await connectNats(server.url, 'bench');
  await provision(n);
  const dataDir = await mkdtemp(join(tmpdir(), 'vp-idle-'));
  const env = { VIRTPLANE_NATS_URL: server.url, VIRTPLANE_DRIVER: 'test', VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_LOG_LEVEL: 'warn' };
  const procs: ServiceProcess[] = [];
  const meter = new Meter(monitorPort, []);
  try {
    for (const s of ['command', 'projector'] as const) {
      const p = spawnService(s, env);
      await p.ready;
      procs.push(p);
    }
    await new Promise((r) => setTimeout(r, 3000));
    const none = await window(meter, monitorPort, procs, SECONDS);
    const agents: ServiceProcess[] = [];
    for (let i = 0; i < HOSTS; i++) {
      const p = spawnService('host-agent', { ...env, VIRTPLANE_HOST_ID: `idle-${i}` }, { label: `host-agent idle-${i}` });
      agents.push(p);
    }
    await Promise.all(agents.map((a) => a.ready));
    procs.push(...agents);
    // Past the first renewals and the first periodic look of each agent.
    await new Promise((r) => setTimeout(r, 3000));
    const some = await window(meter, monitorPort, procs, SECONDS);
    const perHost = (some.total - none.total) / HOSTS;
    const f = (x: number) => x.toFixed(2);
    console.log(`idle, no host: ${f(none.total)} msgs/s; with ${HOSTS} hosts: ${f(some.total)} msgs/s (${SECONDS} s each)`);
    console.log(`  by connection, with hosts: ${some.byConn.map((c) => `${c.name} ${f(c.perSec)}`).join(', ')}`);
    console.log(`  CPU ms/s, with hosts: ${some.cpu.map((c) => `${c.name} ${f(c.msPerSec)}`).join(', ')}`);
    console.log(`idle messages per host: ${f(perHost)}/s, ${f((perHost * HEARTBEAT_INTERVAL_MS) / 1000)} per renewal interval (${HEARTBEAT_INTERVAL_MS} ms)`);
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await n.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
};

await main();
