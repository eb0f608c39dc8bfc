import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../platform/event-store.ts';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';

/**
 * A command that asks to wait (`waitMs`) is answered with the host's outcome once it is recorded:
 * the command service's own reader of the log sees it, so the caller asks the views nothing.
 */
describe('commands answered with their outcome', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  const eventsNow = async () => (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;

  it('carries the outcome in the reply, with no projector running, and it is the view the projector then shows', async () => {
    const c = stack.client;
    const d = await c.define({ definition: { name: 'held-1', memoryKiB: 65536, vcpus: 1 } });
    await stack.kill('projector');
    try {
      const started = await c.start('held-1', { waitMs: 5000 });
      expect(started.outcome?.domain?.observed).toEqual({ state: 'running', reason: 'booted' });
      expect(started.outcome?.domain?.pending).toBeNull();
      // Nothing answers queries now: outcome() can only have taken the reply's word.
      expect((await c.outcome(started, 2000)).observed.state).toBe('running');
      const destroyed = await c.destroy('held-1', { waitMs: 5000 });
      expect(destroyed.outcome?.domain?.observed).toEqual({ state: 'shutoff', reason: 'destroyed' });
      await stack.start('projector');
      const { updatedAt: _u1, ...view } = await c.get(d.domainId, { minVersion: destroyed.outcome!.domain!.version });
      const { updatedAt: _u2, ...held } = destroyed.outcome!.domain!;
      expect(view).toEqual(held);
    } finally {
      if (!stack.services.has('projector')) await stack.start('projector');
    }
  });

  it('a failure comes back as the host\'s error; a transient domain stopped comes back gone', async () => {
    const c = stack.client;
    await c.define({ definition: { name: 'held-2', memoryKiB: 65536, vcpus: 1 } });
    await stack.kill('host-agent');
    try {
      // No host to do it: the deadline keeper records the timeout, and that is the outcome.
      const started = await c.start('held-2', { waitMs: 5000, timeoutSeconds: 1 });
      expect(started.outcome?.domain?.lastError).toMatchObject({ taskId: started.taskId, code: 'timeout' });
      await expect(c.outcome(started, 2000)).rejects.toMatchObject({ code: 'timeout' });
    } finally {
      await stack.start('host-agent');
    }
    const created = await c.create({ definition: { name: 'held-3', memoryKiB: 65536, vcpus: 1 } });
    await c.outcome(created, 10_000);
    const destroyed = await c.destroy('held-3', { waitMs: 5000 });
    expect(destroyed.outcome).toEqual({ domain: null });
    expect(await c.outcomeOrGone(destroyed, 2000)).toBeNull();
  });

  it('an outcome later than the wait: the reply comes without it and outcome() asks the views', async () => {
    const c = stack.client;
    await c.define({ definition: { name: 'held-4', memoryKiB: 65536, vcpus: 1 } });
    await stack.kill('host-agent');
    let started;
    try {
      const t = Date.now();
      started = await c.start('held-4', { waitMs: 300 });
      expect(Date.now() - t).toBeGreaterThanOrEqual(250);
      expect(started.outcome).toBeUndefined();
    } finally {
      await stack.start('host-agent');
    }
    expect((await c.outcome(started, 20_000)).observed.state).toBe('running');
  });

  it('refuses a wait beyond 5 s, or not a whole number of ms, and records nothing', async () => {
    const c = stack.client;
    await c.define({ definition: { name: 'held-5', memoryKiB: 65536, vcpus: 1 } });
    const before = await eventsNow();
    for (const waitMs of [5001, 1.5, -1]) {
      await expect(c.start('held-5', { waitMs })).rejects.toMatchObject({ code: 'invalid-arg', message: expect.stringContaining('waitMs') });
    }
    expect(await eventsNow()).toBe(before);
  });

  it('a command service killed while it holds the reply: the command sent again is answered by its successor, and the guest boots once', async () => {
    const c = stack.client;
    const d = await c.define({ definition: { name: 'held-6', memoryKiB: 65536, vcpus: 1 } });
    await stack.kill('host-agent');
    const commandId = `held-6-${Date.now()}`;
    // Held (no host to act), then its holder dies; the client sends it again after 10 s unanswered.
    const reply = c.start('held-6', { waitMs: 5000, commandId });
    await new Promise((r) => setTimeout(r, 500));
    await stack.kill('command');
    await stack.start('command');
    await stack.start('host-agent');
    const started = await reply;
    expect(started.commandId).toBe(commandId);
    expect((await c.outcome(started, 20_000)).observed.state).toBe('running');
    const guest = (await testDriverState(stack)).find((g) => g.uuid === d.domainId);
    expect(guest?.boots).toBe(1);
  }, 60_000);

  it('the nats-server killed while a reply is held: the command is answered once the server is back, and the guest boots once', async () => {
    const c = stack.client;
    const d = await c.define({ definition: { name: 'held-7', memoryKiB: 65536, vcpus: 1 } });
    await stack.kill('host-agent');
    const reply = c.start('held-7', { waitMs: 5000, commandId: `held-7-${Date.now()}` });
    await new Promise((r) => setTimeout(r, 500));
    await stack.nats.restart('SIGKILL', 500);
    await stack.start('host-agent');
    const started = await reply;
    expect((await c.outcome(started, 30_000)).observed.state).toBe('running');
    // The command sent again across the restart is recorded once, and the guest boots once.
    const commits = await new EventStore(stack.nats.nats).read(`ev.domain.${d.domainId}`);
    expect(commits.flatMap((cm) => cm.events).filter((e) => e.type === 'DomainStartRequested')).toHaveLength(1);
    const guest = (await testDriverState(stack)).find((g) => g.uuid === d.domainId);
    expect(guest?.boots).toBe(1);
  }, 90_000);
});
