/**
 * What authentication and TLS cost: define+start command throughput with 64 in flight through the
 * command service, on an open server, with nkey authentication and the generated permissions, and
 * with both over TLS, in one run, the modes taking turns round after round (the median round of each kept).
 *
 *   node --import tsx bench/auth-cost.ts [--domains 600] [--rounds 3]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtplaneClient } from '../client/index.ts';
import { resolveNatsUrl, type NatsTarget } from '../platform/config.ts';
import { startNatsServer } from '../platform/nats-server.ts';
import { connectNats } from '../platform/nats.ts';
import { provision } from '../platform/provision.ts';
import { call } from '../platform/rpc.ts';
import { AuthStore, ensureServicePrincipals, prepareBus } from '../platform/security/principals.ts';
import { spawnService } from '../platform/service-process.ts';
import { makeTestCertificates } from '../test/fixtures/tls.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const DOMAINS = arg('domains', 600);
const ROUNDS = arg('rounds', 3);
const IN_FLIGHT = 64;
const HOST = 'bench-host';
type Mode = 'open' | 'nkey' | 'nkey+tls';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? 0;

const runMode = async (mode: Mode, dir: string) => {
  const auth = AuthStore.open(join(dir, `auth-${mode}`));
  ensureServicePrincipals(auth);
  auth.add(HOST, 'host');
  auth.add('bench', 'operator');
  const includes = mode === 'open' ? [] : [auth.authConf];
  if (mode === 'nkey+tls') includes.push(join(dir, 'tls.conf'));
  const server = await startNatsServer({ includes });
  const tlsEnv: Record<string, string> = mode === 'nkey+tls' ? { VIRTPLANE_NATS_CA: join(dir, 'ca.pem') } : {};
  const target = (name: string): NatsTarget =>
    mode === 'open' ? { url: server.url } : resolveNatsUrl({ natsUrl: server.url, dataDir: dir, natsContext: auth.contextFile(name), ...(mode === 'nkey+tls' ? { natsCa: join(dir, 'ca.pem') } : {}) });
  const admin = await connectNats(target('admin'), 'bench-admin');
  if (mode === 'open') await provision(admin);
  else await prepareBus(admin, { hosts: [HOST] });
  const command = spawnService('command', {
    VIRTPLANE_NATS_URL: server.url,
    VIRTPLANE_DATA_DIR: dir,
    VIRTPLANE_LOG_LEVEL: 'info',
    ...(mode === 'open' ? {} : { VIRTPLANE_NATS_CONTEXT: auth.contextFile('command') }),
    ...tlsEnv,
  });
  await command.ready;
  const host = await connectNats(target(HOST), 'bench-host');
  const operator = await connectNats(target('bench'), 'bench-operator');
  try {
    // No agent runs: the host registers the way its agent would, so placement has somewhere to go.
    await call(host.nc, `agent.${HOST}.register`, {
      hostId: HOST, hostname: 'bench', instanceId: 'bench', agentVersion: 'bench',
      capabilities: { driver: 'test', domainTypes: ['test'], cpus: 1, memoryKiB: 1 << 20, features: {} },
    });
    const client = VirtplaneClient.over(operator, { actor: 'bench' });
    let next = 0;
    const lat: number[] = [];
    const job = async (count: number, prefix: string) => {
      while (next < count) {
        const i = next++;
        let t = performance.now();
        await client.define({ definition: { name: `${prefix}-${i}`, memoryKiB: 65536, vcpus: 1 } });
        lat.push(performance.now() - t);
        t = performance.now();
        await client.start(`${prefix}-${i}`);
        lat.push(performance.now() - t);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, () => job(100, 'warm')));
    next = 0;
    lat.length = 0;
    const t = performance.now();
    await Promise.all(Array.from({ length: IN_FLIGHT }, () => job(DOMAINS, 'bench')));
    const perSec = (DOMAINS * 2) / ((performance.now() - t) / 1000);
    return { perSec, p50: pct(lat, 50), p99: pct(lat, 99) };
  } finally {
    await operator.close();
    await host.close();
    await command.stop('SIGTERM');
    await admin.close();
    await server.stop();
  }
};

const main = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vp-auth-bench-'));
  makeTestCertificates(dir);
  const modes: Mode[] = ['open', 'nkey', 'nkey+tls'];
  const rounds = new Map<Mode, Array<{ perSec: number; p50: number; p99: number }>>(modes.map((m) => [m, []]));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of modes) {
        const r = await runMode(mode, join(dir));
        rounds.get(mode)!.push(r);
        process.stderr.write(`round ${round + 1} ${mode}: ${r.perSec.toFixed(0)} commands/s\n`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // The median round of each mode: on a shared machine a single round says more about the neighbours.
  const median = (m: Mode) => [...rounds.get(m)!].sort((a, b) => a.perSec - b.perSec)[Math.floor(ROUNDS / 2)]!;
  const base = median('open').perSec;
  console.log(`define+start through the command service, ${DOMAINS} domains, ${IN_FLIGHT} in flight (median of ${ROUNDS} rounds; all rounds in brackets)`);
  console.log('| server | commands/s | p50 ms | p99 ms | ratio to open |');
  console.log('|---|---:|---:|---:|---:|');
  for (const mode of modes) {
    const r = median(mode);
    const all = rounds.get(mode)!.map((x) => x.perSec.toFixed(0)).join(', ');
    console.log(`| ${mode} | ${r.perSec.toFixed(0)} (${all}) | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.perSec / base).toFixed(2)} |`);
  }
};

await main();
process.exit(0);
