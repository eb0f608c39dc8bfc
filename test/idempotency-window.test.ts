import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { startStack, type Stack } from './fixtures/stack.ts';

/**
 * After the server's duplicate window a retried command is no longer caught by its message id; the
 * aggregate's memory of recent command ids must give the first reply again. The window is shortened
 * so the test can outwait it, and the command service restarts so no cache helps.
 */
describe('a retry after the duplicate window', () => {
  let stack: Stack;
  beforeAll(async () => {
    process.env.VIRTPLANE_DUPLICATE_WINDOW_MS = '1000';
    stack = await startStack({ env: { VIRTPLANE_DUPLICATE_WINDOW_MS: '1000' } });
  });
  afterAll(async () => {
    delete process.env.VIRTPLANE_DUPLICATE_WINDOW_MS;
    await stack?.stop();
  });

  it('gets the same reply and appends nothing', async () => {
    const c = stack.client;
    expect((await stack.nats.nats.jsm.streams.info('EVENTS')).config.duplicate_window).toBe(1_000_000_000);
    const defineId = `cmd-${randomUUID()}`;
    const startId = `cmd-${randomUUID()}`;
    const d1 = await c.define({ definition: { name: 'late-retry', memoryKiB: 65536, vcpus: 1 } }, { commandId: defineId });
    const s1 = await c.start('late-retry', { commandId: startId });
    await c.outcome(s1, 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    await stack.kill('command', 'SIGTERM');
    await stack.start('command');
    const before = (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;
    const d2 = await c.define({ definition: { name: 'late-retry', memoryKiB: 65536, vcpus: 1 } }, { commandId: defineId });
    const s2 = await c.start('late-retry', { commandId: startId });
    expect(d2).toMatchObject({ domainId: d1.domainId, version: d1.version, duplicate: true });
    expect(s2).toMatchObject({ domainId: s1.domainId, version: s1.version, duplicate: true });
    expect((await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq).toBe(before);
  });
});
