import { describe, expect, it } from 'vitest';
import type { HostLiveness } from '../../contracts/host/liveness.ts';
import type { KvMirror } from '../../platform/kv-mirror.ts';
import { Scheduler } from './scheduler.ts';

const TTL = 8_000;
const lease = (hostId: string, at: number, extra: Partial<HostLiveness> = {}): HostLiveness => ({
  hostId,
  instanceId: `i-${hostId}`,
  at: new Date(at).toISOString(),
  activeDomains: 0,
  capabilities: { driver: 'test', domainTypes: ['test'], cpus: 1, memoryKiB: 1024, features: {} },
  ...extra,
});
/** The mirror as the scheduler reads it: its entries and its change listeners. */
const mirrorOf = (leases: HostLiveness[]) =>
  ({ entries: new Map(leases.map((l) => [l.hostId, l])), onChange: () => () => {} }) as unknown as KvMirror<HostLiveness>;

describe('placement and lease age', () => {
  const now = 1_000_000;

  it('places only on hosts whose lease is younger than the TTL, and never on a revoked one', () => {
    const s = new Scheduler(mirrorOf([lease('fresh', now - 1000), lease('stale', now - TTL - 1), lease('revoked', now, { revoked: { expiredRevision: 1, expiredAt: '' } })]), { leaseTtlMs: TTL });
    expect(s.alive(now).map((h) => h.hostId)).toEqual(['fresh']);
  });

  it('while the lease bucket does not answer, a lease that could not be renewed is no sign of a dead host', () => {
    const s = new Scheduler(mirrorOf([lease('stale', now - TTL - 5000), lease('revoked', now - TTL - 5000, { revoked: { expiredRevision: 1, expiredAt: '' } })]), { leaseTtlMs: TTL });
    s.leaseClock = () => ({ since: 0, down: true });
    expect(s.alive(now).map((h) => h.hostId)).toEqual(['stale']);
  });

  it('once the bucket answers again, ages count from then: a host that does not renew within the TTL is left out again', () => {
    const s = new Scheduler(mirrorOf([lease('h', now - 20_000)]), { leaseTtlMs: TTL });
    s.leaseClock = () => ({ since: now - 2000, down: false });
    expect(s.alive(now).map((h) => h.hostId)).toEqual(['h']);
    expect(s.alive(now - 2000 + TTL + 1)).toEqual([]);
  });
});

describe('placement while a host is in doubt', () => {
  /** A mirror whose leases the test renews, telling the scheduler as the real mirror does. */
  const liveMirror = (leases: HostLiveness[]) => {
    const entries = new Map(leases.map((l) => [l.hostId, l]));
    const listeners = new Set<(key: string) => void>();
    return {
      mirror: {
        entries,
        onChange: (l: (key: string) => void) => {
          listeners.add(l);
          return () => listeners.delete(l);
        },
      } as unknown as KvMirror<HostLiveness>,
      renew: (l: HostLiveness) => {
        entries.set(l.hostId, l);
        for (const f of listeners) f(l.hostId);
      },
    };
  };

  it('waits for a late lease that nobody revoked, and places there once it is renewed', async () => {
    const late = lease('h', Date.now() - TTL - 1000);
    const { mirror, renew } = liveMirror([late]);
    const s = new Scheduler(mirror, { leaseTtlMs: TTL });
    expect(() => s.pick('test')).toThrow(/no live host/);
    const placed = s.place('test');
    setTimeout(() => renew({ ...late, at: new Date().toISOString() }), 300);
    const t = Date.now();
    await expect(placed).resolves.toBe('h');
    expect(Date.now() - t).toBeGreaterThanOrEqual(250);
  });

  it('refuses once the late host is revoked, and at once when no host is in doubt', async () => {
    const late = lease('h', Date.now() - TTL - 1000);
    const { mirror, renew } = liveMirror([late]);
    const s = new Scheduler(mirror, { leaseTtlMs: TTL });
    const placed = s.place('test');
    setTimeout(() => renew({ ...late, revoked: { expiredRevision: 3, expiredAt: new Date().toISOString() } }), 200);
    await expect(placed).rejects.toMatchObject({ code: 'no-host' });
    const t = Date.now();
    await expect(s.place('test')).rejects.toMatchObject({ code: 'no-host' });
    // A host that cannot run the type is not waited for either.
    await expect(s.place('kvm')).rejects.toMatchObject({ code: 'no-host' });
    expect(Date.now() - t).toBeLessThan(200);
  });

  it('stops waiting for a late lease nobody renews or revokes after the bound', async () => {
    const { mirror } = liveMirror([lease('h', Date.now() - TTL - 1000)]);
    const s = new Scheduler(mirror, { leaseTtlMs: TTL });
    const t = Date.now();
    await expect(s.settled(() => true, 400)).resolves.toEqual([]);
    expect(Date.now() - t).toBeGreaterThanOrEqual(400);
  });
});
