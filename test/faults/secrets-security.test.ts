import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import { BUCKETS, STREAMS, subjects } from '../../contracts/subjects.ts';
import type { Nats } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';
import { startSecuredNats, startSecuredServices, type SecuredNats } from '../fixtures/secured.ts';

/**
 * Secret values against every principal that is not the command service: hosts, auditors, even an
 * admin that can read every stream. Each attempt is refused by the server, or yields ciphertext only.
 */

const refused = async (p: Promise<unknown>, subject?: RegExp) => {
  const e = await p.then(
    () => null,
    (err: unknown) => err as Error & { cause?: Error },
  );
  expect(e, 'the server let it through').not.toBeNull();
  const text = `${e?.message} ${e?.cause?.message ?? ''}`;
  expect(text).toMatch(/Permissions Violation|Authorization Violation/);
  if (subject) expect(text).toMatch(subject);
};

const subscribeRefused = async (n: Nats, subject: string) => {
  const sub = n.nc.subscribe(subject);
  const got = await (async () => {
    for await (const _ of sub) return 'message';
    return 'closed';
  })().catch((e: Error) => e.message);
  expect(got).toMatch(/Permissions Violation for Subscription/);
};

const U = 'd1e2f3a4-0000-4000-8000-00000000c0de';
const P = 'd1e2f3a4-0000-4000-8000-0000000000aa';
const MARKER = 'canary-value-5b8e0c13f2';

describe('secret values: only the command service can read them, and it gives them only to operators', () => {
  let s: SecuredNats;
  let services: Awaited<ReturnType<typeof startSecuredServices>>;
  let dataDir: string;
  let alice: VirtplaneClient;
  beforeAll(async () => {
    s = await startSecuredNats({ hosts: ['host-a', 'host-b'], principals: [['alice', 'operator'], ['audrey', 'auditor']] });
    dataDir = await mkdtemp(join(tmpdir(), 'virtplane-secret-attack-'));
    services = await startSecuredServices(s, { hostId: 'host-b', dataDir, names: ['command', 'projector'] });
    alice = VirtplaneClient.over(await s.as('alice'));
    await alice.secretDefine(`<secret><uuid>${U}</uuid><usage type='iscsi'><target>iqn.2026-01.dev.virtplane:t1</target></usage></secret>`);
    await alice.secretSetValue(U, Buffer.from(MARKER));
    await alice.secretDefine(`<secret private='yes'><uuid>${P}</uuid></secret>`);
    await alice.secretSetValue(P, Buffer.from(`${MARKER}-private`));
  }, 90_000);
  afterAll(async () => {
    await services?.stop();
    await s?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('an operator reads a value; a private one not even an operator', async () => {
    expect((await alice.secretGetValue(U)).toString()).toBe(MARKER);
    await expect(alice.secretGetValue(P)).rejects.toMatchObject({ code: 'invalid-secret' });
  });

  it('a host can neither ask for a value, nor list secrets, nor read the value buckets, nor overhear a set-value', async () => {
    const hostA = await s.as('host-a');
    await refused(call(hostA.nc, subjects.commandFor('host-a', 'secret', 'get-value'), { secret: U }), /cmd\.host-a\.secret/);
    await refused(call(hostA.nc, subjects.commandFor('alice', 'secret', 'get-value'), { secret: U }), /cmd\.alice\.secret/);
    await refused(call(hostA.nc, subjects.query('secret', 'list'), {}), /query\.secret\.list/);
    await refused(call(hostA.nc, subjects.query('secret', 'get'), { secret: U }), /query\.secret\.get/);
    for (const bucket of [BUCKETS.secretValues, BUCKETS.secretValuesMemory, BUCKETS.secrets]) {
      const stream = `KV_${bucket}`;
      await refused(hostA.jsm.direct.getMessage(stream, { seq: 1 }), new RegExp(stream));
      await refused(hostA.jsm.streams.getMessage(stream, { seq: 1 }), new RegExp(stream));
    }
    await subscribeRefused(await s.as('host-a'), subjects.commandFor('*', 'secret', 'set-value'));
    await subscribeRefused(await s.as('host-b'), 'cmd.>');
  });

  it('an auditor sees that a value was set and by whom, never the value, and cannot ask for it', async () => {
    const audrey = await s.as('audrey');
    const auditor = VirtplaneClient.over(audrey);
    const view = await auditor.secretGet(U);
    expect(view.value).toMatchObject({ setBy: 'alice' });
    expect((await auditor.secretList()).map((v) => v.id).sort()).toEqual([P, U].sort());
    await refused(call(audrey.nc, subjects.commandFor('audrey', 'secret', 'get-value'), { secret: U }), /cmd\.audrey/);
    await refused(audrey.jsm.direct.getMessage(`KV_${BUCKETS.secretValues}`, { seq: 1 }), /KV_secret-values/);
    // The whole log, as an auditor may read it: the set is there, its value is not, in any spelling.
    const info = await audrey.jsm.streams.info(STREAMS.events);
    let sets = 0;
    for (let seq = 1; seq <= info.state.last_seq; seq++) {
      const m = await audrey.jsm.streams.getMessage(STREAMS.events, { seq });
      const text = Buffer.from(m!.data).toString('latin1');
      if (text.includes('SecretValueSet')) sets++;
      for (const f of [MARKER, Buffer.from(MARKER).toString('base64').slice(0, 16), Buffer.from(MARKER).toString('hex')]) expect(text).not.toContain(f);
    }
    expect(sets).toBe(2);
  });

  it("an admin who reads the value bucket's stream gets ciphertext only; the key is not on the bus", async () => {
    const admin = await s.as('admin');
    const stream = `KV_${BUCKETS.secretValues}`;
    const info = await admin.jsm.streams.info(stream);
    expect(info.state.messages).toBeGreaterThan(0);
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await admin.jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (!m) continue;
      const text = Buffer.from(m.data).toString('latin1');
      expect(text).toMatch(/"ct":/);
      expect(text).not.toContain(MARKER);
      expect(text).not.toContain(Buffer.from(MARKER).toString('base64').slice(0, 16));
    }
    // The key lives in the command service's data directory only, readable by its owner alone.
    expect(((await stat(join(dataDir, 'secret.key'))).mode & 0o077)).toBe(0);
    const key = (await readFile(join(dataDir, 'secret.key'), 'utf8')).trim();
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
    expect(await readdir(dataDir)).toContain('secret.key');
  });

  it("DHCP leases too are read only by operators: a host cannot ask another host's, nor answer for it; an auditor cannot ask", async () => {
    const hostA = await s.as('host-a');
    const body = { networkId: U, name: 'default' };
    await refused(call(hostA.nc, subjects.hostRead('host-b', 'dhcp-leases'), body), /hostread\.host-b/);
    await subscribeRefused(await s.as('host-a'), subjects.hostRead('host-b', 'dhcp-leases'));
    await refused(call((await s.as('audrey')).nc, subjects.hostRead('host-b', 'dhcp-leases'), body), /hostread\.host-b/);
  });

  it("an admin cannot write the value buckets (to put another secret's ciphertext in place)", async () => {
    const admin = await s.as('admin');
    const values = await admin.kvm.open(BUCKETS.secretValues);
    await refused(values.put(`${U}.${'0'.repeat(32)}`, 'forged'), /\$KV\.secret-values/);
    expect((await alice.secretGetValue(U)).toString()).toBe(MARKER);
  });
});
