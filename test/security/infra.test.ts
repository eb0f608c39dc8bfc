import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shippedConfigs } from '../../infra/nats/configs.ts';
import { PROJECT_ROOT, resolveNatsUrl } from '../../platform/config.ts';
import { freePort } from '../../platform/nats-server.ts';
import { connectNats } from '../../platform/nats.ts';
import { AuthStore, ensureServicePrincipals, prepareBus } from '../../platform/security/principals.ts';
import { call } from '../../platform/rpc.ts';

describe('the shipped configuration', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it('is what the generator writes, not a hand-kept copy', async () => {
    for (const [file, text] of Object.entries(shippedConfigs())) {
      expect(await readFile(join(PROJECT_ROOT, 'infra', 'nats', file), 'utf8'), `infra/nats/${file}: run infra/generate-configs.ts`).toBe(text);
    }
  });

  it('runs on a real nats-server with the users infra/auth.ts writes, and enforces them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virtplane-shipped-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // The shipped single.conf, with only its store moved to a temporary directory; the port is given
    // on the command line (never 4222 here).
    const conf = shippedConfigs()['single.conf']!.replace('/data/jetstream', join(dir, 'js')).replace('http: 0.0.0.0:8222\n', '');
    await writeFile(join(dir, 'single.conf'), conf);
    const store = AuthStore.open(join(dir, 'auth'));
    ensureServicePrincipals(store);
    store.add('docker-host', 'host');
    const port = await freePort();
    const child = spawn('nats-server', ['-c', join(dir, 'single.conf'), '-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    cleanup.push(async () => {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    });
    const url = `nats://127.0.0.1:${port}`;
    const as = async (name: string) => {
      for (let i = 0; ; i++) {
        try {
          return await connectNats(resolveNatsUrl({ natsUrl: url, dataDir: dir, natsContext: store.contextFile(name) }), name);
        } catch (e) {
          if (i > 100) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const admin = await as('admin');
    await prepareBus(admin, { hosts: ['docker-host'] });
    const host = await as('docker-host');
    await expect(call(host.nc, 'query.domain.list', {})).rejects.toThrow(/Permissions Violation/);
    await expect(connectNats(url, 'anonymous')).rejects.toThrow(/Authorization/);
    await host.close();
    await admin.close();
  });
});
