import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMS } from '../contracts/subjects.ts';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';

/**
 * The command service reads each domain commit once: one reader of its own that every replica needs
 * whole (the deadline keeper, which hands each commit on to the host monitor). Tasks go out with the
 * commands that record them, not through a relay reading the log.
 */
describe('readers of domain commits in the command service', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  const domainReaders = async () => {
    const out: Array<{ name: string; durable: boolean }> = [];
    for await (const c of stack.nats.nats.jsm.consumers.list(STREAMS.events)) {
      const filters = [c.config.filter_subject, ...(c.config.filter_subjects ?? [])];
      if (filters.includes('ev.domain.>')) out.push({ name: c.name, durable: c.config.durable_name !== undefined });
    }
    return out;
  };

  it('one reader for deadlines and host loss, and no relay: tasks are published by their commands', async () => {
    const readers = await domainReaders();
    expect(readers.filter((r) => r.durable).map((r) => r.name)).toEqual([]);
    expect(readers.filter((r) => !r.durable)).toHaveLength(1);
  });

  it('the shared reader is deleted on the server: it reads on, deadlines are still recorded and nothing boots late', async () => {
    const c = stack.client;
    const d = await c.define({ definition: { name: 'reread', memoryKiB: 65536, vcpus: 1 } });
    const [reader] = (await domainReaders()).filter((r) => !r.durable);
    await stack.nats.nats.jsm.consumers.delete(STREAMS.events, reader!.name);
    // The client notices the consumer gone by its missed heartbeats (about 40 s here) and makes it anew.
    const until = Date.now() + 90_000;
    while ((await domainReaders()).filter((r) => !r.durable).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));

    // With the host gone, only the deadline keeper can end the start, and it must have read the intent.
    await stack.kill('host-agent');
    const accepted = await c.start('reread', { timeoutSeconds: 1 });
    await expect(c.outcome(accepted, 15_000)).rejects.toMatchObject({ code: 'timeout' });
    expect((await c.get('reread')).pending).toBeNull();
    // Still one reader of its own, not one more each time it was remade.
    expect((await domainReaders()).filter((r) => !r.durable)).toHaveLength(1);

    await stack.start('host-agent');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await testDriverState(stack)).find((g) => g.uuid === d.domainId)?.boots ?? 0).toBe(0);
  }, 120_000);
});
