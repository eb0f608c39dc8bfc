import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { BaseConfig, EmbeddedAddress, embeddedAddressFile, loadConfig, PrincipalName, resolveNatsUrl } from '../platform/config.ts';
import { connectNats } from '../platform/nats.ts';
import { AuthStore, ensureServicePrincipals, prepareBus } from '../platform/security/principals.ts';
import { embeddedAuthDir } from '../platform/security/enrol.ts';
import { createLogger } from '../platform/log.ts';
import { freePort, startNatsServer } from '../platform/nats-server.ts';
import { spawnService, type ServiceProcess } from '../platform/service-process.ts';

/**
 * The embedded default: a nats-server of our own (never whatever listens on 4222) with its store under
 * the data directory, the command service, the projector and one host agent, each logged in as its
 * own principal with the permissions of its role. The address file lets the CLI find the server and
 * the local operator's credentials with no flags.
 *
 * Another instance runs beside the first with a data directory (and so a store, keys and address file)
 * of its own: `--data-dir DIR` or VIRTPLANE_DATA_DIR; `--port N` or VIRTPLANE_EMBEDDED_PORT fixes its
 * client port (default 14222, or a free port when that one is taken). The CLI finds an instance by its
 * data directory: `VIRTPLANE_DATA_DIR=DIR virtplane list`.
 */
const log = createLogger('embedded');
const EmbeddedConfig = BaseConfig.extend({
  embeddedPort: z.coerce
    .number()
    .int()
    .min(1)
    .max(65535)
    .refine((p) => p !== 4222, 'not 4222, which belongs to whatever else runs on the machine')
    .optional(),
});
let flags: { 'data-dir'?: string | undefined; port?: string | undefined };
try {
  flags = parseArgs({ options: { 'data-dir': { type: 'string' }, port: { type: 'string' } } }).values;
} catch (e) {
  log.error(`${(e as Error).message}; usage: embedded [--data-dir DIR] [--port N]`);
  process.exit(2);
}
let loaded: z.infer<typeof EmbeddedConfig>;
try {
  loaded = loadConfig(EmbeddedConfig, { dataDir: flags['data-dir'], embeddedPort: flags.port });
} catch (e) {
  log.error((e as Error).message);
  process.exit(2);
}
// The services run from the project root: a relative directory means the one the user is in.
const cfg = { ...loaded, dataDir: resolve(loaded.dataDir) };
mkdirSync(cfg.dataDir, { recursive: true });
const addressFile = embeddedAddressFile(cfg.dataDir);
if (existsSync(addressFile)) {
  const prev = EmbeddedAddress.safeParse(JSON.parse(readFileSync(addressFile, 'utf8')));
  if (prev.success) {
    try {
      process.kill(prev.data.pid, 0);
      log.error(`already running at ${prev.data.url} (pid ${prev.data.pid}); stop it first`);
      process.exit(1);
    } catch {
      // Left behind by a run that did not shut down: the server is gone, start afresh.
    }
  }
}

// Principals: kept across runs under the data directory, so enrolled hosts and rotated keys stay.
const auth = AuthStore.open(embeddedAuthDir(cfg.dataDir));
ensureServicePrincipals(auth);
const hostId = process.env.VIRTPLANE_HOST_ID || hostname().replace(/[^A-Za-z0-9_-]/g, '-') || 'host';
auth.add(hostId, 'host');
const taken = new Set(auth.entries.filter((p) => p.role !== 'operator').map((p) => p.name));
const wanted = PrincipalName.safeParse(userInfo().username.replace(/[^A-Za-z0-9_-]/g, '-'));
const operator = wanted.success && !taken.has(wanted.data) ? wanted.data : 'operator';
auth.add(operator, 'operator');

const preferred = 14222;
if (cfg.embeddedPort !== undefined && !(await isFree(cfg.embeddedPort))) {
  log.error(`port ${cfg.embeddedPort} is taken: choose another (--port, VIRTPLANE_EMBEDDED_PORT)`);
  process.exit(1);
}
const port = cfg.embeddedPort ?? (await freePort().then(async (fallback) => ((await isFree(preferred)) ? preferred : fallback)));
const server = await startNatsServer({ storeDir: join(cfg.dataDir, 'nats'), port, logFile: join(cfg.dataDir, 'nats-server.log'), includes: [auth.authConf] });
// Streams, buckets and the host's task consumers are the admin's to make: no service may.
const admin = await connectNats(resolveNatsUrl({ natsUrl: server.url, dataDir: cfg.dataDir, natsContext: auth.contextFile('admin') }), 'virtplane-admin');
await prepareBus(admin, { replicas: cfg.replicas, hosts: auth.entries.filter((p) => p.role === 'host').map((p) => p.name) });
await admin.close();
writeFileSync(addressFile, JSON.stringify({ url: server.url, pid: server.pid, startedAt: new Date().toISOString(), context: auth.contextFile(operator) }));
log.info(`nats-server with JetStream at ${server.url}, store ${server.storeDir}, principals in ${auth.dir}`);

// One health address cannot serve three services: a setting meant for one service is not passed on.
const env = { VIRTPLANE_NATS_URL: server.url, VIRTPLANE_DATA_DIR: cfg.dataDir, VIRTPLANE_HOST_ID: hostId, VIRTPLANE_HEALTH_LISTEN: '' };
const relay = (line: string) => process.stderr.write(`${line}\n`);
const services: ServiceProcess[] = [];
for (const name of ['command', 'projector', 'host-agent'] as const) {
  const p = spawnService(name, { ...env, VIRTPLANE_NATS_CONTEXT: auth.contextFile(name === 'host-agent' ? hostId : name) }, { onLine: relay });
  services.push(p);
  await p.ready;
}
log.info(`virtplane is up: try \`npx virtplane host-list\` (you are '${operator}'; Ctrl-C stops everything)`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  for (const p of [...services].reverse()) await p.stop('SIGTERM');
  await server.stop();
  rmSync(addressFile, { force: true });
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
for (const p of services) {
  void p.exited.then((code) => {
    if (!stopping) {
      log.error(`${p.name} exited (${code}); stopping`);
      void stop();
    }
  });
}

async function isFree(p: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
