import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedAddress, embeddedAddressFile, PROJECT_ROOT } from '../platform/config.ts';
import { freePort } from '../platform/nats-server.ts';

const run = promisify(execFile);
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');
const EMBEDDED = join(PROJECT_ROOT, 'infra', 'embedded.ts');
const clean = { VIRTPLANE_NATS_URL: '', VIRTPLANE_NATS_CONTEXT: '', VIRTPLANE_DATA_DIR: '', VIRTPLANE_EMBEDDED_PORT: '', VIRTPLANE_DRIVER: 'test' };

interface Instance {
  child: ChildProcess;
  log: () => string;
  up: Promise<void>;
  exited: Promise<number | null>;
}
const launch = (args: string[], env: Record<string, string>): Instance => {
  const child = spawn(process.execPath, ['--import', 'tsx', EMBEDDED, ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const up = new Promise<void>((resolve, reject) => {
    // Started from a terminal (no IPC channel), it says so on stdout; its log and errors go to stderr.
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('virtplane is up')) resolve();
      });
    }
    void exited.then((code) => reject(new Error(`embedded exited ${code}: ${log}`)));
  });
  up.catch(() => undefined);
  return { child, log: () => log, up, exited };
};
const stop = async (i: Instance | undefined) => {
  if (i && i.child.exitCode === null) {
    i.child.kill('SIGTERM');
    await i.exited;
  }
};

/** Two embedded defaults at once on one machine, each with its own port, store, keys and address file. */
describe('embedded instances side by side', () => {
  let dirA: string;
  let dirB: string;
  let portB: number;
  let a: Instance;
  let b: Instance;
  const virtplane = async (dataDir: string, ...args: string[]) =>
    (await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...clean, VIRTPLANE_DATA_DIR: dataDir }, timeout: 60_000 })).stdout;
  const addressOf = (dir: string) => EmbeddedAddress.parse(JSON.parse(readFileSync(embeddedAddressFile(dir), 'utf8')));

  beforeAll(async () => {
    dirA = await mkdtemp(join(tmpdir(), 'vp-embedded-a-'));
    dirB = await mkdtemp(join(tmpdir(), 'vp-embedded-b-'));
    portB = await freePort();
    // One chooses by environment, the other by flags.
    a = launch([], { VIRTPLANE_DATA_DIR: dirA, VIRTPLANE_HOST_ID: 'host-a' });
    b = launch(['--data-dir', dirB, '--port', String(portB)], { VIRTPLANE_HOST_ID: 'host-b' });
    await Promise.all([a.up, b.up]);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([stop(a), stop(b)]);
    for (const d of [dirA, dirB]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('runs both, each on its own server and store', () => {
    const [addrA, addrB] = [addressOf(dirA), addressOf(dirB)];
    expect(addrB.url).toBe(`nats://127.0.0.1:${portB}`);
    expect(addrA.url).not.toBe(addrB.url);
    expect(addrA.pid).not.toBe(addrB.pid);
    expect(addrA.context?.startsWith(dirA)).toBe(true);
    expect(addrB.context?.startsWith(dirB)).toBe(true);
  });

  it('keeps their fleets apart: the CLI reaches each by its data directory', async () => {
    expect(JSON.parse(await virtplane(dirA, 'host-list', '--json')).map((h: { hostId: string }) => h.hostId)).toEqual(['host-a']);
    expect(JSON.parse(await virtplane(dirB, 'host-list', '--json')).map((h: { hostId: string }) => h.hostId)).toEqual(['host-b']);
    await virtplane(dirB, 'define', '--name', 'only-in-b', '--memory', '64');
    await virtplane(dirB, 'start', 'only-in-b');
    const names = async (dir: string) => JSON.parse(await virtplane(dir, 'list', '--all', '--json')).map((d: { name: string }) => d.name);
    expect(await names(dirB)).toEqual(['only-in-b']);
    expect(await names(dirA)).toEqual([]);
  }, 60_000);

  it('refuses a port that is taken, saying which setting to change, and leaves the others running', async () => {
    const dirC = await mkdtemp(join(tmpdir(), 'vp-embedded-c-'));
    try {
      const c = launch([], { VIRTPLANE_DATA_DIR: dirC, VIRTPLANE_EMBEDDED_PORT: String(portB) });
      expect(await c.exited).toBe(1);
      expect(c.log()).toContain(`port ${portB} is taken: choose another (--port, VIRTPLANE_EMBEDDED_PORT)`);
      const bad = launch(['--port', '4222', '--data-dir', dirC], {});
      expect(await bad.exited).toBe(2);
      expect(bad.log()).toContain('embeddedPort (VIRTPLANE_EMBEDDED_PORT)');
    } finally {
      await rm(dirC, { recursive: true, force: true });
    }
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
  });

  it('refuses a second instance on a data directory in use', async () => {
    const again = launch(['--data-dir', dirA], {});
    expect(await again.exited).toBe(1);
    expect(again.log()).toContain('already running');
  });
});
