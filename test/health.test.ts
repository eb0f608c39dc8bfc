import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../platform/config.ts';
import { freePort } from '../platform/nats-server.ts';
import { spawnService, type ServiceName, type ServiceProcess } from '../platform/service-process.ts';
import { startTestNats, type TestNats } from './fixtures/nats.ts';

const probe = (target: string, wait = 0) =>
  spawnSync(process.execPath, [join(PROJECT_ROOT, 'platform/health-check.mjs'), ...(wait ? ['--wait', String(wait)] : []), target], { encoding: 'utf8' });

const get = async (port: number, path: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

const until = async (what: string, ok: () => Promise<boolean>, ms = 20_000) => {
  const deadline = Date.now() + ms;
  while (!(await ok().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('health endpoint', () => {
  let nats: TestNats;
  let dataDir: string;
  const procs: ServiceProcess[] = [];
  const start = async (name: ServiceName, port: number) => {
    const lines: string[] = [];
    const p = spawnService(
      name,
      { VIRTPLANE_NATS_URL: nats.url, VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_HOST_ID: 'health-host', VIRTPLANE_DRIVER: 'test', VIRTPLANE_HEALTH_LISTEN: `127.0.0.1:${port}`, VIRTPLANE_LOG_LEVEL: 'info' },
      { onLine: (l) => lines.push(l) },
    );
    procs.push(p);
    return { p, lines };
  };

  beforeAll(async () => {
    nats = await startTestNats();
    dataDir = await mkdtemp(join(tmpdir(), 'virtplane-health-'));
  });
  afterAll(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await nats.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('answers ready for each service once it serves, and the probe agrees', async () => {
    for (const name of ['command', 'projector', 'host-agent'] as const) {
      const port = await freePort();
      const { p } = await start(name, port);
      await p.ready;
      expect(await get(port, '/readyz')).toEqual({ status: 200, body: { service: name, ready: true, nats: 'connected' } });
      expect((await get(port, '/livez')).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
      expect(probe(String(port)).status).toBe(0);
      expect(probe(`127.0.0.1:${port}`).status).toBe(0);
      expect(probe(`http://127.0.0.1:${port}/livez`).status).toBe(0);
    }
  });

  it('fails readiness while NATS is away and passes again when it is back', async () => {
    const port = await freePort();
    const { p } = await start('command', port);
    await p.ready;
    await nats.server.stop('SIGKILL');
    await until('readiness failing', async () => (await get(port, '/readyz')).status === 503);
    expect((await get(port, '/readyz')).body).toMatchObject({ ready: false, nats: 'reconnecting' });
    // Alive all the same: a supervisor must not restart a service for the bus being away.
    expect((await get(port, '/livez')).status).toBe(200);
    const down = probe(String(port));
    expect(down.status).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toMatch(/^not ready: http:\/\/127\.0\.0\.1:\d+\/readyz: 503 /);
    await nats.restart();
    // The probe's --wait is what systemd's ExecStartPost uses.
    expect(probe(String(port), 30).status).toBe(0);
    expect((await p.stop('SIGTERM'))).toBe(0);
    expect(probe(String(port)).stderr).toMatch(/ECONNREFUSED/);
  });

  it('is found ready by whoever runs the service even when pretty logs are asked for', async () => {
    const saved = process.env.VIRTPLANE_LOG_FORMAT;
    process.env.VIRTPLANE_LOG_FORMAT = 'pretty';
    try {
      const { p, lines } = await start('projector', await freePort());
      await p.ready;
      expect(JSON.parse(lines.find((l) => l.includes(' ready"'))!)).toMatchObject({ level: 'info', component: 'projector' });
    } finally {
      if (saved === undefined) delete process.env.VIRTPLANE_LOG_FORMAT;
      else process.env.VIRTPLANE_LOG_FORMAT = saved;
    }
  });

  it('refuses a bad address at start-up with one line naming the setting', async () => {
    const { p, lines } = await start('projector', 70000);
    expect(await p.exited).not.toBe(0);
    expect(lines.join('\n')).toContain('healthListen (VIRTPLANE_HEALTH_LISTEN)');
  });

  it('says when the probe is given nothing to ask', () => {
    const r = spawnSync(process.execPath, [join(PROJECT_ROOT, 'platform/health-check.mjs')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('usage:');
  });
});
