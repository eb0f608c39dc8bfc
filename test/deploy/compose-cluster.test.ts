import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { VirtplaneClient } from '../../client/index.ts';
import { STREAMS } from '../../contracts/subjects.ts';
import { PROJECT_ROOT, resolveNatsUrl } from '../../platform/config.ts';
import { freePort, startNatsServer, type RunningNatsServer } from '../../platform/nats-server.ts';
import { connectNats, type Nats } from '../../platform/nats.ts';
import { spawnService, type ServiceName, type ServiceProcess } from '../../platform/service-process.ts';

/**
 * docker-compose.yml's three-node cluster and its services, run here without Docker: the nats-server
 * files the compose file mounts, with only their addresses and store moved to loopback and a temporary
 * directory; the compose file's own commands and environment for the key bootstrap, the setup job and
 * the services (their sources under tsx in place of the image's dist/ bundles).
 */

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  restart?: string;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
}
const compose = parse(await readFile(join(PROJECT_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };
const svc = (name: string): ComposeService => {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};
/** Compose's `${VAR:-default}` with the defaults, as `docker compose up` with no .env would. */
const interpolate = (s: string) => s.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
const NODES = ['nats-1', 'nats-2', 'nats-3'];
/** The image's bundles, built from these sources. */
const ENTRY: Record<string, string> = {
  'dist/auth.mjs': 'infra/auth.ts',
  'dist/command.mjs': 'services/command/main.ts',
  'dist/projector.mjs': 'services/projector/main.ts',
  'dist/host-agent.mjs': 'services/host-agent/main.ts',
};
const SERVICE_OF: Record<string, ServiceName> = { 'dist/command.mjs': 'command', 'dist/projector.mjs': 'projector', 'dist/host-agent.mjs': 'host-agent' };

describe('the compose file', () => {
  it('publishes no host port 4222, restarts and health-checks what runs for good, and asks for 3 replicas', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const p of s.ports ?? []) expect(interpolate(p).split(':').slice(0, -1).join(':'), `${name} publishes ${p}`).not.toMatch(/(^|:)4222$/);
      const oneShot = s.restart === 'no' || s.restart === 'on-failure';
      if (!oneShot) {
        expect(s.restart, name).toBe('unless-stopped');
        expect(s.healthcheck?.test.length, `${name} has a health check`).toBeGreaterThan(0);
      }
      if (s.environment?.VIRTPLANE_REPLICAS) expect(s.environment.VIRTPLANE_REPLICAS, name).toBe('3');
    }
    // Nothing starts before the keys exist and the streams are made, and agents wait for healthy services.
    for (const n of NODES) expect(svc(n).depends_on?.auth?.condition).toBe('service_completed_successfully');
    for (const n of NODES) expect(svc('setup').depends_on?.[n]?.condition).toBe('service_healthy');
    for (const n of ['command', 'projector']) expect(svc(n).depends_on?.setup?.condition).toBe('service_completed_successfully');
    expect(svc('agent-1').depends_on?.command?.condition).toBe('service_healthy');
  });

  it.skipIf(spawnSync('docker', ['compose', 'version']).status !== 0)('passes `docker compose config`', () => {
    const r = spawnSync('docker', ['compose', '-f', join(PROJECT_ROOT, 'docker-compose.yml'), 'config', '--quiet'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe("the compose file's cluster on loopback", () => {
  let root: string;
  let authDir: string;
  const servers: RunningNatsServer[] = [];
  const services: ServiceProcess[] = [];
  const open: Nats[] = [];
  let url: string;

  /** The compose command with its paths and addresses moved here. */
  const localArgs = (command: string[]) =>
    command.map(interpolate).flatMap((a) => {
      if (ENTRY[a]) return ['--import', 'tsx', join(PROJECT_ROOT, ENTRY[a])];
      if (a === '/auth') return [authDir];
      return [a.replace(/nats:\/\/nats-1:4222,nats:\/\/nats-2:4222,nats:\/\/nats-3:4222/, url)];
    });
  const localEnv = (env: Record<string, string> = {}) =>
    Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, k === 'VIRTPLANE_NATS_URL' ? url : k === 'VIRTPLANE_NATS_CONTEXT' ? v.replace(/^\/auth\//, `${authDir}/`) : interpolate(v)]),
    );
  const runJob = (command: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, localArgs(command.slice(1)), { cwd: PROJECT_ROOT, env: { ...process.env, ...localEnv(env) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.once('exit', (code) => resolve({ code, out }));
    });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'virtplane-compose-'));
    authDir = join(root, 'auth');
    const ports = await Promise.all(NODES.map(async () => ({ client: await freePort(), cluster: await freePort(), http: await freePort() })));
    url = ports.map((p) => `nats://127.0.0.1:${p.client}`).join(',');

    // The `auth` job: the keys and the servers' users.
    expect(svc('auth').command?.[1]).toBe('dist/auth.mjs');
    const init = await runJob(svc('auth').command!);
    expect(init.code, init.out).toBe(0);

    for (const [i, name] of NODES.entries()) {
      const mount = svc(name).volumes!.find((v) => v.endsWith(':/etc/nats/nats.conf:ro'))!;
      expect(svc(name).command).toEqual(['-c', '/etc/nats/nats.conf']);
      const original = await readFile(join(PROJECT_ROOT, mount.split(':')[0]!), 'utf8');
      const dir = join(root, name);
      let conf = original
        .replace('listen: 0.0.0.0:4222', `listen: 127.0.0.1:${ports[i]!.client}`)
        .replace('http: 0.0.0.0:8222', `http: 127.0.0.1:${ports[i]!.http}`)
        .replace('listen: 0.0.0.0:6222', `listen: 127.0.0.1:${ports[i]!.cluster}`)
        .replace('store_dir: "/data/jetstream"', `store_dir: ${JSON.stringify(join(dir, 'jetstream'))}`);
      for (const [j, other] of NODES.entries()) conf = conf.replace(`nats-route://${other}:6222`, `nats-route://127.0.0.1:${ports[j]!.cluster}`);
      // Only addresses and the store moved: every other line is the shipped file's.
      const changed = original.split('\n').filter((l, k) => l !== conf.split('\n')[k]);
      expect(changed.map((l) => l.trim().split(/[: ]/)[0])).toEqual(['listen', 'http', 'store_dir', 'listen', 'nats-route', 'nats-route', 'nats-route']);
      // As mounted: the configuration at /etc/nats, the auth volume at /etc/nats/auth.
      await mkdir(dir, { recursive: true });
      await symlink(authDir, join(dir, 'auth'));
      servers.push(await startNatsServer({ config: conf, port: ports[i]!.client, storeDir: dir }));
    }

    // The `setup` job, restarted on failure until the cluster has a meta leader.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await runJob(svc('setup').command!, svc('setup').environment);
      if (r.code === 0) break;
      if (Date.now() > deadline) throw new Error(`setup never succeeded: ${r.out}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    for (const name of ['command', 'projector', 'agent-1']) {
      const s = svc(name);
      const health = await freePort();
      const p = spawnService(SERVICE_OF[s.command![1]!]!, { ...localEnv(s.environment), VIRTPLANE_DATA_DIR: join(root, `${name}-data`), VIRTPLANE_HEALTH_LISTEN: `127.0.0.1:${health}`, VIRTPLANE_LOG_LEVEL: 'info' }, {
        label: name,
        onLine: (l) => process.env.VIRTPLANE_TEST_LOGS && process.stderr.write(`[${name}] ${l}\n`),
      });
      services.push(p);
      await p.ready;
      // The compose health check's probe, on this service's address.
      const probe = spawnSync(process.execPath, [join(PROJECT_ROOT, 'platform/health-check.mjs'), `127.0.0.1:${health}`], { encoding: 'utf8' });
      expect(probe.status, probe.stderr).toBe(0);
    }
  }, 240_000);

  afterAll(async () => {
    for (const n of open) await n.close().catch(() => undefined);
    for (const p of services.reverse()) {
      const killer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
      await p.stop('SIGTERM');
      clearTimeout(killer);
    }
    await Promise.all(servers.map((s) => s.stop()));
    if (root) await rm(root, { recursive: true, force: true });
  });

  const as = async (principal: string) => {
    const n = await connectNats(resolveNatsUrl({ natsUrl: url, dataDir: root, natsContext: join(authDir, `${principal}.json`) }), `test-${principal}`);
    open.push(n);
    return n;
  };

  it('has every stream and bucket at three replicas, each current on all three nodes', async () => {
    const admin = await as('admin');
    const names: string[] = [];
    for await (const info of admin.jsm.streams.list()) {
      names.push(info.config.name);
      expect(info.config.num_replicas, info.config.name).toBe(3);
      expect(info.cluster?.leader, info.config.name).toBeTruthy();
      expect(info.cluster?.replicas?.length, info.config.name).toBe(2);
    }
    for (const s of Object.values(STREAMS)) expect(names).toContain(s);
    expect(names.some((n) => n.startsWith('KV_'))).toBe(true);
    const consumer = await admin.jsm.consumers.info(STREAMS.tasks, 'agent-agent-1');
    expect(consumer.config.num_replicas === 0 || consumer.config.num_replicas === 3).toBe(true);
  });

  it('carries a command from the operator of the compose file to the agent and back', async () => {
    const c = VirtplaneClient.over(await as('ops'));
    const def = await c.define({ definition: { name: 'compose-1', memoryKiB: 131072, vcpus: 1 } });
    expect(def.name).toBe('compose-1');
    const started = await c.outcome(await c.start('compose-1'), 20_000);
    expect(started.observed).toEqual({ state: 'running', reason: 'booted' });
    const view = await c.get('compose-1');
    expect(view.hostId).toBe('agent-1');
  });
});
