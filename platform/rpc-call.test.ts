import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isVirtError, VirtError } from '../contracts/errors.ts';
import { startTestNats, type TestNats } from '../test/fixtures/nats.ts';
import { unavailable } from './js-retry.ts';
import { call, serve } from './rpc.ts';

describe('call: a passing loss of the cluster is a wait, not an error', () => {
  let t: TestNats;
  beforeAll(async () => {
    t = await startTestNats();
  });
  afterAll(async () => t?.stop());

  it('asks again after a reply marked retryable, with the same body', async () => {
    const seen: string[] = [];
    const sub = serve(t.nats.nc, 'probe.retryable', undefined, z.object({ commandId: z.string() }), async (r) => {
      seen.push(r.commandId);
      if (seen.length < 3) throw unavailable('the log did not answer');
      return { done: r.commandId };
    });
    const reply = await call<{ done: string }>(t.nats.nc, 'probe.retryable', { commandId: 'c-1' }, 10_000);
    expect(reply.done).toBe('c-1');
    expect(seen).toEqual(['c-1', 'c-1', 'c-1']);
    sub.unsubscribe();
  });

  it('sends a request unanswered for resendAfterMs again, and takes the answer of whichever copy gives one', async () => {
    const seen: string[] = [];
    const hold: Array<() => void> = [];
    // The first copy is held (a request that crossed a route to a dying server is never answered).
    const sub = serve(t.nats.nc, 'probe.resend', undefined, z.object({ commandId: z.string() }), async (r) => {
      seen.push(r.commandId);
      if (seen.length === 1) await new Promise<void>((resolve) => hold.push(resolve));
      return { copy: seen.length };
    });
    const reply = await call<{ copy: number }>(t.nats.nc, 'probe.resend', { commandId: 'c-2' }, 10_000, { resendAfterMs: 300 });
    expect(reply.copy).toBe(2);
    expect(seen).toEqual(['c-2', 'c-2']);
    hold.forEach((r) => r());
    sub.unsubscribe();
  });

  it('still takes the answer of the first copy when it comes after the copy sent again', async () => {
    let n = 0;
    const sub = serve(t.nats.nc, 'probe.late-first', undefined, z.object({}), async () => {
      const mine = ++n;
      // The first copy answers late; every later one never does.
      await new Promise((r) => setTimeout(r, mine === 1 ? 700 : 60_000).unref());
      return { copy: mine };
    });
    const reply = await call<{ copy: number }>(t.nats.nc, 'probe.late-first', {}, 10_000, { resendAfterMs: 200 });
    expect(reply.copy).toBe(1);
    expect(n).toBeGreaterThan(1);
    sub.unsubscribe();
  });

  it('passes on a refusal at once', async () => {
    let calls = 0;
    const sub = serve(t.nats.nc, 'probe.refused', undefined, z.object({}), async () => {
      calls++;
      throw new VirtError('operation-invalid', 'domain is already running');
    });
    const e = await call(t.nats.nc, 'probe.refused', {}, 10_000).catch((x) => x);
    expect(isVirtError(e) && e.code).toBe('operation-invalid');
    expect(calls).toBe(1);
    sub.unsubscribe();
  });

  it('waits a little for a service that is not subscribed yet, then says nobody answers', async () => {
    setTimeout(() => serve(t.nats.nc, 'probe.late', undefined, z.object({}), async () => ({ late: true })), 500);
    expect((await call<{ late: boolean }>(t.nats.nc, 'probe.late', {}, 10_000)).late).toBe(true);
    const e = await call(t.nats.nc, 'probe.nobody', {}, 1_000).catch((x) => x);
    expect(isVirtError(e) && e.code).toBe('operation-failed');
  });
});
