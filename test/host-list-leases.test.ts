import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUCKETS } from '../contracts/subjects.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

/**
 * The host list reads the leases when asked (the projector follows no renewal): it shows each lease
 * as the bucket holds it at that moment, and a bucket that is gone or being made again never fails it.
 */
describe('host list and leases', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { VIRTPLANE_RENEW_MS: '200', VIRTPLANE_FENCE_MS: '1000', VIRTPLANE_LEASE_TTL_MS: '3000', VIRTPLANE_LEASE_MARGIN_MS: '500' } });
  });
  afterAll(async () => stack?.stop());

  const hostA = async () => (await stack.client.hosts()).find((h) => h.hostId === stack.hostId);

  it('shows the newest renewal at the moment of the question', async () => {
    const first = await hostA();
    expect(first).toMatchObject({ alive: true });
    expect(first!.lost ?? false).toBe(false);
    await new Promise((r) => setTimeout(r, 700));
    const second = await hostA();
    expect(Date.parse(second!.lastHeartbeat!)).toBeGreaterThan(Date.parse(first!.lastHeartbeat!));
    expect(second!.leaseAgeMs).toBeLessThan(1000);
    const stored = await (await stack.nats.nats.kvm.open(BUCKETS.hostLiveness)).get(stack.hostId);
    expect(Date.parse(second!.lastHeartbeat!)).toBeLessThanOrEqual(Date.parse(stored!.json<{ at: string }>().at));
  });

  it('the lease bucket removed: the list still answers, the host shown not alive, then alive again once it registered', async () => {
    await stack.nats.nats.jsm.streams.delete(`KV_${BUCKETS.hostLiveness}`);
    const gone = await hostA();
    expect(gone).toBeDefined();
    expect(gone!.lastHeartbeat ?? null).toBeNull();
    expect(gone!.alive).toBe(false);
    const end = Date.now() + 20_000;
    let back = gone;
    while (!back?.alive && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      back = await hostA();
    }
    expect(back).toMatchObject({ alive: true });
  }, 30_000);

  it('many questions at once are answered alike', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => hostA()));
    for (const a of answers) expect(a).toMatchObject({ hostId: stack.hostId, alive: true });
  });
});
