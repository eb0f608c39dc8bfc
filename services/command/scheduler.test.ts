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
