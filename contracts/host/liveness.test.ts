import { describe, expect, it } from 'vitest';
import { DEFAULT_LEASE_TIMINGS, LeaseTimings, leaseExpired, leaseTimingsProblem } from './liveness.ts';

describe('lease timings', () => {
  it('the defaults are valid and detect a lost host within 10 s', () => {
    expect(leaseTimingsProblem(DEFAULT_LEASE_TIMINGS)).toBeNull();
    // The monitor looks every ttl/8 (at most a second): detection is bounded by TTL plus one look.
    expect(DEFAULT_LEASE_TIMINGS.leaseTtlMs + Math.min(1000, DEFAULT_LEASE_TIMINGS.leaseTtlMs / 8)).toBeLessThanOrEqual(10_000);
  });

  it('a TTL not longer than fence + margin is refused with a clear reason', () => {
    const t = LeaseTimings.parse({ renewMs: 500, fenceMs: 3000, leaseTtlMs: 4000, leaseMarginMs: 1000 });
    expect(leaseTimingsProblem(t)).toMatch(/leaseTtlMs \(4000\) must be longer than fenceMs \+ leaseMarginMs \(3000 \+ 1000\)/);
    expect(leaseTimingsProblem({ ...t, leaseTtlMs: 4001 })).toBeNull();
  });

  it('a fence timeout shorter than two renewals is refused', () => {
    expect(leaseTimingsProblem(LeaseTimings.parse({ renewMs: 2000, fenceMs: 3000, leaseTtlMs: 8000 }))).toMatch(/fenceMs \(3000\) must allow two renewals/);
  });

  it('values come as strings from the environment and must be numbers in range', () => {
    expect(LeaseTimings.parse({ renewMs: '300' }).renewMs).toBe(300);
    expect(LeaseTimings.safeParse({ fenceMs: 'soon' }).success).toBe(false);
    expect(LeaseTimings.safeParse({ renewMs: 0 }).success).toBe(false);
  });

  it('a lease is expired only once strictly older than the TTL', () => {
    expect(leaseExpired(1000, 1000 + 8000, { leaseTtlMs: 8000 })).toBe(false);
    expect(leaseExpired(1000, 1000 + 8001, { leaseTtlMs: 8000 })).toBe(true);
  });
});
