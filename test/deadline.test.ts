import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';

/** An operation no host carries out in time is recorded as failed and never blocks the domain. */
describe('operation deadlines', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  it('records a start the host never ran as a timeout, frees the domain, and the late task does nothing', async () => {
    const c = stack.client;
    const d = await c.define({ definition: { name: 'late', memoryKiB: 65536, vcpus: 1 } });
    await stack.kill('host-agent');
    const accepted = await c.start('late', { timeoutSeconds: 1 });
    await expect(c.outcome(accepted, 10_000)).rejects.toMatchObject({ code: 'timeout', message: /did not finish before its deadline/ });
    const v = await c.get('late');
    expect(v.pending).toBeNull();
    expect(v.lastError).toMatchObject({ op: 'start', code: 'timeout', taskId: accepted.taskId });
    expect(v.observed.state).toBe('shutoff');

    // The agent comes back and finds the old task: its claim is refused, so nothing boots.
    await stack.start('host-agent');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await testDriverState(stack)).find((g) => g.uuid === d.domainId)?.boots ?? 0).toBe(0);
    expect((await c.get('late')).observed.state).toBe('shutoff');

    // And the domain is free for the next operation.
    const again = await c.outcome(await c.start('late'), 10_000);
    expect(again.observed.state).toBe('running');
  });
});
