import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { BaseConfig, ConfigError, embeddedAddressFile, loadConfig, PrincipalName, resolveNatsUrl } from '../platform/config.ts';
import { guestsLeftNote, pidAlive, readEmbedded } from '../platform/embedded.ts';
import { connectNats } from '../platform/nats.ts';
import { AuthStore, ensureServicePrincipals, prepareBus } from '../platform/security/principals.ts';
import { embeddedAuthDir } from '../platform/security/enrol.ts';
import { createLogger } from '../platform/log.ts';
import { freePort, startNatsServer, type RunningNatsServer } from '../platform/nats-server.ts';
import { reasonOf, type Readiness } from '../platform/ready.ts';
import { SERVICE_NAMES, ServiceStartError, spawnService, type ServiceProcess } from '../platform/service-process.ts';

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
 *
 * Whoever started it with an IPC channel (`virtplane up`, tests) hears `ready` or why it failed; in
 * a terminal (`npm start`) it says so on stdout. Any failure stops everything started so far.
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
let server: RunningNatsServer | undefined;
const services: ServiceProcess[] = [];
let addressFile: string | undefined;
let dataDir: string | undefined;
let stopping = false;

const tell = (m: Readiness): Promise<void> =>
  new Promise((resolve) => (process.send && process.connected ? process.send(m, undefined, {}, () => resolve()) : resolve()));

const stopAll = async (): Promise<void> => {
  for (const p of [...services].reverse()) {
    const killer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
    await p.stop('SIGTERM');
    clearTimeout(killer);
  }
  await server?.stop();
  if (addressFile && readEmbedded(dataDir!)?.supervisor === process.pid) rmSync(addressFile, { force: true });
};

const fail = async (e: unknown): Promise<never> => {
  if (!stopping) {
    stopping = true;
    const usage = e instanceof ConfigError || (e instanceof ServiceStartError && e.usage);
    const reason = reasonOf(e);
    await stopAll().catch(() => undefined);
    process.stderr.write(`error: ${reason}\n`);
    await tell({ type: 'failed', reason, usage });
    process.exit(usage ? 2 : 1);
  }
  return new Promise<never>(() => {});
};

const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info(`received ${signal}, stopping`);
  await stopAll();
  const note = dataDir ? guestsLeftNote(dataDir) : null;
  process.stdout.write(`virtplane stopped${note ? `; ${note}` : ''}\n`);
  process.exit(0);
};

const start = async (): Promise<void> => {
  let flags: { 'data-dir'?: string | undefined; port?: string | undefined };
  try {
    flags = parseArgs({ options: { 'data-dir': { type: 'string' }, port: { type: 'string' } } }).values;
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}; usage: embedded [--data-dir DIR] [--port N]`);
  }
  const loaded = loadConfig(EmbeddedConfig, { dataDir: flags['data-dir'], embeddedPort: flags.port });
  // The services run from the project root: a relative directory means the one the user is in.
  const cfg = { ...loaded, dataDir: resolve(loaded.dataDir) };
  dataDir = cfg.dataDir;
  mkdirSync(cfg.dataDir, { recursive: true });
  const file = embeddedAddressFile(cfg.dataDir);
  const prev = readEmbedded(cfg.dataDir);
  if (prev && (pidAlive(prev.pid) || pidAlive(prev.supervisor))) {
    throw new Error(`virtplane is already running at ${prev.url} (pid ${prev.supervisor ?? prev.pid}): \`virtplane down\` stops it`);
  }
  // Left behind by a run that did not shut down: the server is gone, start afresh.
  if (existsSync(file)) rmSync(file, { force: true });

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
    throw new Error(`port ${cfg.embeddedPort} is taken: choose another (--port, VIRTPLANE_EMBEDDED_PORT)`);
  }
  const port = cfg.embeddedPort ?? (await freePort().then(async (fallback) => ((await isFree(preferred)) ? preferred : fallback)));
  server = await startNatsServer({ storeDir: join(cfg.dataDir, 'nats'), port, logFile: join(cfg.dataDir, 'nats-server.log'), includes: [auth.authConf] });
  // Streams, buckets and the host's task consumers are the admin's to make: no service may.
  const admin = await connectNats(resolveNatsUrl({ natsUrl: server.url, dataDir: cfg.dataDir, natsContext: auth.contextFile('admin') }), 'virtplane-admin');
  await prepareBus(admin, { replicas: cfg.replicas, hosts: auth.entries.filter((p) => p.role === 'host').map((p) => p.name) });
  await admin.close();
  log.info(`nats-server with JetStream at ${server.url}, store ${server.storeDir}, principals in ${auth.dir}`);

  // One health address cannot serve three services: a setting meant for one service is not passed on.
  const env = { VIRTPLANE_NATS_URL: server.url, VIRTPLANE_DATA_DIR: cfg.dataDir, VIRTPLANE_HOST_ID: hostId, VIRTPLANE_HEALTH_LISTEN: '' };
  const relay = (line: string) => process.stderr.write(`${line}\n`);
  for (const name of SERVICE_NAMES) {
    const p = spawnService(name, { ...env, VIRTPLANE_NATS_CONTEXT: auth.contextFile(name === 'host-agent' ? hostId : name) }, { onLine: relay });
    services.push(p);
    // Before it was ready, its own reason says why; after, that it is gone.
    void p.exited.then((code) =>
      p.ready.then(
        () => !stopping && fail(new Error(`${p.name} exited (${code}); everything was stopped`)),
        (e: unknown) => !stopping && fail(e),
      ),
    );
    await p.ready;
  }
  // Written last: its presence means everything is up, and it names who to stop.
  addressFile = file;
  writeFileSync(
    file,
    JSON.stringify({
      url: server.url,
      pid: server.pid,
      startedAt: new Date().toISOString(),
      context: auth.contextFile(operator),
      supervisor: process.pid,
      services: services.map((p) => ({ name: p.name, pid: p.child.pid ?? -1 })),
      operator,
    }),
  );
  await tell({ type: 'ready', detail: { url: server.url, operator, dataDir: cfg.dataDir } });
  if (!process.send) {
    process.stdout.write(`virtplane is up at ${server.url}: try \`virtplane host-list\` (you are '${operator}'). Ctrl-C or \`virtplane down\` stops the services and the server; guests keep running unless \`virtplane down --destroy-guests\`\n`);
  }
};

async function isFree(p: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('uncaughtException', (e) => void fail(e));
process.on('unhandledRejection', (e) => void fail(e));
process.channel?.unref();
await start().catch(fail);
