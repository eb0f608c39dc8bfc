import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUCKETS } from '../../contracts/subjects.ts';
import type { HostLiveness } from '../../contracts/host/liveness.ts';
import { createLogger } from '../../platform/log.ts';
import { encodeJson } from '../../platform/nats.ts';
import { startTestNats, type TestNats } from '../../test/fixtures/nats.ts';
import { HostLease, type Grant } from './lease.ts';

const FENCE_MS = 5_000;
const BEAT_MS = 200;

/** A lease on the real bucket, registered by writing the entry as the command service would. */
const leaseOn = (t: TestNats, hostId: string) => {
  let registrations = 0;
  const register = async (): Promise<Grant> => {
    registrations++;
    const kv = await t.nats.kvm.open(BUCKETS.hostLiveness);
    const lease: HostLiveness = {
      hostId,
      instanceId: `instance-${registrations}`,
      at: new Date().toISOString(),
      activeDomains: 0,
      capabilities: { driver: 'test', domainTypes: ['test'], cpus: 1, memoryKiB: 1024, features: {} },
    };
    return { lease, revision: await kv.put(hostId, encodeJson(lease)) };
  };
  const lease = new HostLease(t.nats, hostId, register, createLogger('lease-test', 'error'), async () => {}, FENCE_MS);
  return { lease, registrations: () => registrations };
};

/** Beats every BEAT_MS, one at a time, as the agent does, until stopped. */
const beating = (lease: HostLease) => {
  let on = true;
  const done = (async () => {
    while (on) {
      await lease.beat(0);
      await new Promise((r) => setTimeout(r, BEAT_MS));
    }
  })();
  return async () => {
    on = false;
    await done;
  };
};

describe('a host lease', () => {
  let t: TestNats;
  beforeAll(async () => {
    t = await startTestNats();
  });
  afterAll(async () => t?.stop());

  it('rides out a bucket that does not answer for a while on the same registration, renewing on the same revision', async () => {
    const { lease, registrations } = leaseOn(t, 'host-outage');
    await lease.acquire();
    const stop = beating(lease);
    try {
      await new Promise((r) => setTimeout(r, 3 * BEAT_MS));
      const before = lease.revision!;
      // Shorter than the fence timeout: nobody could have written the entry meanwhile, so the lease
      // is still this host's, and registering again (through a command service waiting on the same
      // server) would only lose time.
      await t.restart('SIGKILL', 1_500);
      const until = Date.now() + 10_000;
      while (lease.revision === before && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(lease.revision).toBeGreaterThan(before);
      expect(lease.valid).toBe(true);
      expect(registrations()).toBe(1);
    } finally {
      await stop();
    }
  });

  it('registers again when someone else wrote the entry (a revocation)', async () => {
    const { lease, registrations } = leaseOn(t, 'host-revoked');
    const grant = await lease.acquire();
    const kv = await t.nats.kvm.open(BUCKETS.hostLiveness);
    await kv.update('host-revoked', encodeJson({ ...grant.lease, revoked: { expiredRevision: grant.revision, expiredAt: grant.lease.at } }), grant.revision);
    await lease.beat(0);
    expect(registrations()).toBe(2);
    const entry = (await kv.get('host-revoked'))!.json<HostLiveness>();
    expect(entry.revoked).toBeUndefined();
    expect(entry.instanceId).toBe('instance-2');
  });
});
