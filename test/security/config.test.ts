import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaseConfig, ConfigError, loadConfig, resolveNatsUrl } from '../../platform/config.ts';
import { startNatsServer, type RunningNatsServer } from '../../platform/nats-server.ts';
import { connectNats } from '../../platform/nats.ts';
import { AuthStore } from '../../platform/security/principals.ts';

/** Every way NATS users log in, from flags, variables or a config file, checked at start-up. */
describe('credential settings', () => {
  let dir: string;
  const servers: RunningNatsServer[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtplane-creds-'));
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const serverWith = async (auth: string) => {
    const file = join(dir, `auth-${servers.length}.conf`);
    await writeFile(file, auth);
    const s = await startNatsServer({ includes: [file] });
    servers.push(s);
    return s;
  };

  it('logs in with a user and password, which a URL alone cannot carry', async () => {
    const s = await serverWith('authorization { user: alice, password: "s3cret" }\n');
    await expect(connectNats(s.url.replace('nats://', 'nats://alice:s3cret@'), 'in-url')).rejects.toThrow();
    const cfg = loadConfig(BaseConfig, {}, { VIRTPLANE_NATS_URL: s.url, VIRTPLANE_NATS_USER: 'alice', VIRTPLANE_NATS_PASSWORD: 's3cret' });
    const target = resolveNatsUrl(cfg);
    expect(target.principal).toBe('alice');
    const n = await connectNats(target, 'user');
    expect(n.nc.isClosed()).toBe(false);
    await n.close();
  });

  it('logs in with a token from a config file', async () => {
    const s = await serverWith('authorization { token: "t0ken" }\n');
    const file = join(dir, 'virtplane.json');
    await writeFile(file, JSON.stringify({ natsUrl: s.url, natsToken: 't0ken', principal: 'ci' }));
    const cfg = loadConfig(BaseConfig, {}, { VIRTPLANE_CONFIG: file });
    const n = await connectNats(resolveNatsUrl(cfg), 'token');
    expect(n.principal).toBe('ci');
    await n.close();
  });

  it('logs in with an nkey seed file or a NATS context by name', async () => {
    const store = AuthStore.open(join(dir, 'auth'));
    store.add('ops', 'operator');
    const s = await serverWith(`authorization { users = [ { nkey: "${store.get('ops')!.publicKey}" } ] }\n`);
    const bySeed = await connectNats(resolveNatsUrl({ natsUrl: s.url, dataDir: dir, natsNkey: store.seedFile('ops') }), 'seed');
    expect(bySeed.principal).toBe('ops');
    await bySeed.close();
    // A context by name, as the nats CLI keeps them under ~/.config/nats/context.
    const xdg = join(dir, 'xdg');
    const { mkdirSync, copyFileSync } = await import('node:fs');
    mkdirSync(join(xdg, 'nats', 'context'), { recursive: true });
    await writeFile(join(xdg, 'nats', 'context', 'ops.json'), JSON.stringify({ url: s.url, nkey: store.seedFile('ops') }));
    copyFileSync(store.seedFile('ops'), join(xdg, 'ops.nk'));
    const saved = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = xdg;
    try {
      const byName = await connectNats(resolveNatsUrl({ dataDir: dir, natsContext: 'ops' }), 'context');
      expect(byName.principal).toBe('ops');
      await byName.close();
    } finally {
      if (saved === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = saved;
    }
  });

  it('logs in over TLS, checking the server against the CA it is given', async () => {
    const { makeTestCertificates } = await import('../fixtures/tls.ts');
    const certs = makeTestCertificates(dir);
    const store = AuthStore.open(join(dir, 'auth-tls'));
    store.add('ops', 'operator');
    const auth = join(dir, 'tls-users.conf');
    await writeFile(auth, `authorization { users = [ { nkey: "${store.get('ops')!.publicKey}" } ] }\n`);
    const s = await startNatsServer({ includes: [auth, certs.serverConf] });
    servers.push(s);
    const n = await connectNats(resolveNatsUrl({ natsUrl: s.url, dataDir: dir, natsContext: store.contextFile('ops'), natsCa: certs.ca }), 'tls');
    expect(n.nc.info?.tls_required).toBe(true);
    await n.close();
    // Without the CA the server's certificate is not trusted.
    await expect(connectNats(resolveNatsUrl({ natsUrl: s.url, dataDir: dir, natsContext: store.contextFile('ops'), natsCa: '/etc/ssl/certs/ca-certificates.crt' }), 'tls-untrusted')).rejects.toThrow();
  });

  it.each([
    [{ natsUser: 'a', natsPassword: 'b', natsToken: 'c' }, /choose one way to log in/],
    [{ natsUser: 'a' }, /natsPassword \(VIRTPLANE_NATS_PASSWORD\): natsUser needs a password/],
    [{ natsNkey: '/nonexistent/seed.nk' }, /natsNkey \(VIRTPLANE_NATS_NKEY\): cannot read/],
    [{ natsCert: '/etc/hostname' }, /needs its key/],
    [{ natsContext: '/nonexistent/ctx.json' }, /cannot read/],
    [{ natsToken: 'x' }, /name the principal/],
  ])('refuses %o at start-up with one clear line', (given, message) => {
    let err: unknown;
    try {
      resolveNatsUrl({ natsUrl: 'nats://127.0.0.1:1', dataDir: dir, ...given });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses a principal name that is not one subject token', () => {
    expect(() => loadConfig(BaseConfig, { principal: 'a.b' })).toThrow(/principal \(VIRTPLANE_PRINCIPAL\)/);
    expect(() => loadConfig(BaseConfig, { principal: 'virtplane:deadline' })).toThrow(ConfigError);
  });
});
