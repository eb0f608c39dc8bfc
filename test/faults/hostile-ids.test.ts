import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJson, encodeJson } from '../../platform/nats.ts';
import { startStack, type Stack } from '../fixtures/stack.ts';
import { foldNames, lastSeq } from '../fixtures/log.ts';

/**
 * Hostile ids and names in every field that could reach a subject: each gets a structured error,
 * nothing is stored, and the services keep answering.
 */

type Reply = { ok: boolean; error?: { code: string; message: string } };

const WILDCARDS = ['>', '*', 'a.b', 'a b', ' ', 'ev.domain.>', ''];
const NFC = 'caf\u00e9';
const NFD = 'cafe\u0301';

describe('hostile ids and names', () => {
  let stack: Stack;
  let victim: string;
  let poolId: string;
  let before: number;

  const raw = async (subject: string, body: unknown): Promise<Reply> => {
    const m = await stack.nats.nats.nc.request(subject, typeof body === 'string' ? body : encodeJson(body), { timeout: 10_000 });
    return decodeJson(m.data) as Reply;
  };
  const refused = async (subject: string, body: unknown, codes: string[]) => {
    const r = await raw(subject, body);
    expect(r.ok, `${subject} ${JSON.stringify(body).slice(0, 120)}`).toBe(false);
    expect(codes, `${subject} ${JSON.stringify(body).slice(0, 120)}: ${r.error?.message}`).toContain(r.error?.code);
  };

  beforeAll(async () => {
    stack = await startStack();
    victim = (await stack.client.define({ definition: { name: 'victim', memoryKiB: 65536, vcpus: 1 } })).domainId;
    poolId = (await stack.client.poolDefine({ definition: { name: 'victim-pool', type: 'dir', target: { path: '/tmp/virtplane-hostile-pool' } } })).poolId;
    await stack.client.netDefine({ definition: { name: 'victim-net', forward: { mode: 'nat' }, ips: [{ address: '10.77.0.1', prefix: 24 }] } });
    before = await lastSeq(stack.nats.nats);
  }, 120_000);
  afterAll(async () => stack?.stop());

  it('wildcards and dots in every reference of every command: a structured error, nothing stored', async () => {
    for (const x of WILDCARDS) {
      // A reference that is not a uuid is a name: one nobody has (no-...), or not a name at all.
      for (const verb of ['start', 'undefine', 'destroy', 'shutdown', 'suspend', 'resume', 'reboot']) {
        await refused(`cmd.domain.${verb}`, { domain: x }, ['no-domain', 'invalid-arg']);
      }
      await refused('cmd.domain.attach-interface', { domain: x, iface: { type: 'network', source: 'victim-net' } }, ['no-domain', 'invalid-arg']);
      await refused('cmd.domain.detach-interface', { domain: x, mac: '52:54:00:00:00:01' }, ['no-domain', 'invalid-arg']);
      await refused('cmd.domain.attach-disk', { domain: x, disk: { source: { file: '/img/a.img' }, target: { dev: 'vdb' } } }, ['no-domain', 'invalid-arg']);
      await refused('cmd.domain.detach-disk', { domain: x, target: x }, ['no-domain', 'invalid-arg']);
      for (const verb of ['attach-device', 'detach-device', 'update-device']) {
        await refused(`cmd.domain.${verb}`, { domain: x, xml: "<disk type='file'><source file='/a'/><target dev='vdb'/></disk>" }, ['no-domain', 'invalid-arg']);
      }
      await refused('cmd.domain.change-media', { domain: x, target: 'hdc', action: 'eject' }, ['no-domain', 'invalid-arg']);
      for (const verb of ['undefine', 'start', 'destroy', 'autostart']) await refused(`cmd.network.${verb}`, { network: x }, ['no-network', 'invalid-arg']);
      for (const verb of ['undefine', 'build', 'start', 'destroy']) await refused(`cmd.pool.${verb}`, { pool: x }, ['no-storage-pool', 'invalid-arg']);
      await refused('cmd.vol.create', { pool: x, definition: { name: 'v.qcow2', capacityBytes: 1024 } }, ['no-storage-pool', 'invalid-arg']);
      await refused('cmd.vol.delete', { pool: x, volume: 'v.qcow2' }, ['no-storage-pool', 'invalid-arg']);
      // Ids that must be uuids or tokens are refused outright.
      await refused('cmd.domain.define', { definition: { name: 'w', uuid: x, memoryKiB: 65536, vcpus: 1 } }, ['invalid-arg']);
      await refused('cmd.domain.define', { definition: { name: 'w', memoryKiB: 65536, vcpus: 1 }, hostId: x }, ['invalid-arg']);
      await refused('cmd.network.define', { definition: { name: 'w', uuid: x } }, ['invalid-arg']);
      await refused('cmd.pool.define', { definition: { name: 'w', uuid: x, type: 'dir', target: { path: '/tmp/w' } } }, ['invalid-arg']);
      await refused('cmd.pool.define', { definition: { name: 'w', type: 'dir', target: { path: '/tmp/w' } }, hostId: x }, ['invalid-arg']);
    }
    expect(await lastSeq(stack.nats.nats)).toBe(before);
  }, 120_000);

  it('agent reports and claims with wildcard ids are refused and store nothing', async () => {
    const h = stack.hostId;
    for (const x of WILDCARDS) {
      await refused(`agent.${h}.report`, { reportId: `r-${randomUUID()}`, kind: 'observed', domainId: x, observed: { state: 'running', reason: 'booted' } }, ['invalid-arg']);
      await refused(`agent.${h}.report`, { reportId: `r-${randomUUID()}`, kind: 'completed', domainId: victim, taskId: x || '>', observed: { state: 'running', reason: 'booted' } }, ['invalid-arg']);
      await refused(`agent.${h}.report`, { reportId: `r-${randomUUID()}`, kind: 'interfaces', domainId: x, interfaces: [] }, ['invalid-arg']);
      await refused(`agent.${h}.claim`, { taskId: 't-1', domainId: x, placementEpoch: 1 }, ['invalid-arg']);
      await refused(`agent.${h}.storage-report`, { reportId: `r-${randomUUID()}`, kind: 'failed', poolId: x, taskId: 't-1', error: { code: 'internal-error', message: 'x' } }, ['invalid-arg']);
      await refused(`agent.${h}.storage-claim`, { taskId: 't-1', poolId: x }, ['invalid-arg']);
    }
    await refused(`agent.${h}.storage-claim`, { taskId: '>', poolId }, ['invalid-arg']);
    expect(await lastSeq(stack.nats.nats)).toBe(before);
    // The projector is still folding: a new write shows up in the views.
    const ok = await stack.client.define({ definition: { name: 'after-reports', memoryKiB: 65536, vcpus: 1 } });
    expect((await stack.client.get('after-reports', { minVersion: ok.version })).id).toBe(ok.domainId);
    before = await lastSeq(stack.nats.nats);
  }, 120_000);

  it('queries with wildcard references answer not-found or invalid-arg', async () => {
    for (const x of WILDCARDS) {
      await refused('query.domain.get', { domain: x }, ['no-domain', 'invalid-arg']);
      await refused('query.network.get', { network: x }, ['no-network', 'invalid-arg']);
      await refused('query.pool.get', { pool: x }, ['no-storage-pool', 'invalid-arg']);
      await refused('query.vol.list', { pool: x }, ['no-storage-pool', 'invalid-arg']);
    }
  });

  it('an upper-case copy of an existing uuid addresses the same domain and never defines a second', async () => {
    const upper = victim.toUpperCase();
    const again = await stack.client.define({ definition: { name: 'victim', uuid: upper, memoryKiB: 131072, vcpus: 1 } });
    expect(again.domainId).toBe(victim);
    await expect(stack.client.define({ definition: { name: 'victim-2', uuid: upper, memoryKiB: 65536, vcpus: 1 } })).rejects.toMatchObject({ code: 'operation-failed' });
    const xml = `<domain type='test'><name>victim</name><uuid>${upper}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;
    expect((await stack.client.define({ xml })).domainId).toBe(victim);
    expect((await stack.client.get(upper)).id).toBe(victim);
    const started = await stack.client.start(upper);
    expect(started.domainId).toBe(victim);
    await stack.client.outcome(started, 60_000);
    // Settled before the next case counts the log: a late report of this destroy is no stray write.
    await stack.client.outcome(await stack.client.destroy(upper), 60_000);
    const { holders, violations } = await foldNames(stack.nats.nats);
    expect(violations).toEqual([]);
    expect(holders.domain.get('victim')).toEqual([victim]);
    before = await lastSeq(stack.nats.nats);
  }, 120_000);

  it('NFC and NFD spellings are one name; zero-width, bidi and control characters are refused', async () => {
    const cafe = await stack.client.define({ definition: { name: NFC, memoryKiB: 65536, vcpus: 1 } });
    const atNfc = await lastSeq(stack.nats.nats);
    await expect(stack.client.define({ definition: { name: NFD, memoryKiB: 65536, vcpus: 1 } })).rejects.toMatchObject({ code: 'operation-failed' });
    await expect(stack.client.define({ xml: `<domain type='test'><name>${NFD}</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>` })).rejects.toMatchObject({
      code: 'operation-failed',
    });
    expect(await lastSeq(stack.nats.nats)).toBe(atNfc);
    expect((await stack.client.get(NFD)).id).toBe(cafe.domainId);
    expect((await stack.client.get(NFD)).name).toBe(NFC);

    for (const name of ['web\u200b1', 'web\u200c1', 'web\u200d1', 'web\u20601', '\ufeffweb1', 'web\u202e1', 'web\u202a1', 'web\u20661', 'web\u20691', 'a/b', ' web1', 'web1 ', 'we\u0007b1', 'web\u00851']) {
      await refused('cmd.domain.define', { definition: { name, memoryKiB: 65536, vcpus: 1 } }, ['invalid-arg']);
      await refused('cmd.domain.define', { xml: `<domain type='test'><name>${name.replace('\u0007', '&#7;')}</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>` }, ['invalid-arg', 'xml-error']);
      await refused('cmd.network.define', { definition: { name, forward: { mode: 'nat' }, ips: [{ address: '10.78.0.1', prefix: 24 }] } }, ['invalid-arg']);
      await refused('cmd.pool.define', { definition: { name, type: 'dir', target: { path: '/tmp/w' } } }, ['invalid-arg']);
    }
    expect(await lastSeq(stack.nats.nats)).toBe(atNfc);
    before = atNfc;
  }, 120_000);

  it('definitions over the size limit are refused naming it; one over the transport limit never arrives', async () => {
    const padded = (bytes: number) => ({ name: 'huge', memoryKiB: 65536, vcpus: 1, description: 'x'.repeat(bytes) });
    for (const [subject, body] of [
      ['cmd.domain.define', { definition: padded(2 * 1024 * 1024) }],
      ['cmd.network.define', { definition: { name: 'huge', bridge: { name: 'x'.repeat(2 * 1024 * 1024) } } }],
      ['cmd.pool.define', { definition: { name: 'huge', type: 'dir', target: { path: `/${'x'.repeat(3 * 1024 * 1024)}` } } }],
      ['cmd.vol.create', { pool: 'victim-pool', definition: { name: 'huge.qcow2', capacityBytes: 1024, key: 'x'.repeat(2 * 1024 * 1024) } }],
    ] as const) {
      const r = await raw(subject, body);
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('invalid-arg');
      expect(r.error?.message).toMatch(/1 MiB limit/);
    }
    // 5 MB is past the server's payload limit: the request is refused before it reaches a service.
    await expect(raw('cmd.domain.define', { definition: padded(5 * 1024 * 1024) })).rejects.toThrow();
    expect(await lastSeq(stack.nats.nats)).toBe(before);
    // And everything still answers.
    const ok = await stack.client.define({ definition: { name: 'after-huge', memoryKiB: 65536, vcpus: 1 } });
    expect((await stack.client.get('after-huge', { minVersion: ok.version })).id).toBe(ok.domainId);
  }, 120_000);
});
