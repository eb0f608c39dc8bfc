import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { decide } from '../../contracts/domain/decider.ts';
import { EventStore } from '../../platform/event-store.ts';
import { domainKind } from '../../services/command/domain-kind.ts';
import { Repository } from '../../services/command/repository.ts';
import { startStack, testDriverState, type Stack } from '../fixtures/stack.ts';
import { countPublished } from './log-audit.ts';

/**
 * A task is published by the command that records its intent, with no relay reading the log behind
 * it. What a command service that dies between the two leaves (an intent in the log, no task) is
 * repaired by the replicas' backstop: the host still gets the task, once, and boots the guest once.
 * The agents here resync only hourly, so nothing but the backstop can have run these operations.
 */
const QUIET_AGENT = { VIRTPLANE_RESYNC_MS: '3600000' };

const meta = () => ({ commandId: randomUUID(), actor: 'test', correlationId: randomUUID(), causationId: randomUUID(), traceContext: {}, now: new Date() });

/** What a command service does up to its crash: the start recorded, its task never published. */
const recordStartOnly = async (stack: Stack, domainId: string) => {
  const repo = new Repository(new EventStore(stack.nats.nats), domainKind);
  const m = meta();
  const out = await repo.execute(domainId, m, (s) => decide({ type: 'start', paused: false, timeoutMs: 60_000 }, s, new Date()));
  return { ok: true as const, commandId: m.commandId, domainId, name: out.state.name, version: out.version, taskId: out.events[0]!.id };
};

const boots = async (stack: Stack, domainId: string) => (await testDriverState(stack)).find((g) => g.uuid === domainId)?.boots ?? 0;

describe('tasks whose command service died after recording them', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('one replica running: its backstop publishes the task, the guest boots once', async () => {
    stack = await startStack({ env: QUIET_AGENT });
    const s = stack;
    const d = await s.client.define({ definition: { name: 'orphan-1', memoryKiB: 65536, vcpus: 1 } });
    const published = countPublished(s.nats.nats, 'task.>');
    const accepted = await recordStartOnly(s, d.domainId);
    // Nobody published it: the host has nothing yet.
    await new Promise((r) => setTimeout(r, 1000));
    expect(published.counts.get(accepted.taskId) ?? 0).toBe(0);
    expect((await s.client.outcome(accepted, 30_000)).observed.state).toBe('running');
    expect(published.counts.get(accepted.taskId)).toBe(1);
    expect(await boots(s, d.domainId)).toBe(1);
    published.stop();
  }, 60_000);

  it('the only replica killed with -9 and started again: it publishes what is in flight when it reads the log, once to the host', async () => {
    stack = await startStack({ env: QUIET_AGENT });
    const s = stack;
    const d = await s.client.define({ definition: { name: 'orphan-2', memoryKiB: 65536, vcpus: 1 } });
    await s.kill('command');
    const accepted = await recordStartOnly(s, d.domainId);
    const published = countPublished(s.nats.nats, 'task.>');
    await s.start('command');
    expect((await s.client.outcome(accepted, 30_000)).observed.state).toBe('running');
    expect(published.counts.get(accepted.taskId)).toBe(1);
    expect(await boots(s, d.domainId)).toBe(1);
    published.stop();
  }, 60_000);

  it('two replicas: a slow start is published again by the replica that did not record it, and given to the host once', async () => {
    stack = await startStack({ services: [], env: { ...QUIET_AGENT, VIRTPLANE_TEST_LATENCY_MS: '7000' } });
    const s = stack;
    await s.start('command', {}, 'command-1');
    await s.start('command', {}, 'command-2');
    await s.start('projector');
    await s.start('host-agent');
    const published = countPublished(s.nats.nats, 'task.>');
    const names = Array.from({ length: 6 }, (_, i) => `slow-${i}`);
    for (const name of names) await s.client.define({ definition: { name, memoryKiB: 65536, vcpus: 1 } });
    const starts = await Promise.all(names.map((n) => s.client.start(n, { timeoutSeconds: 60 })));
    for (const a of starts) expect((await s.client.outcome(a, 60_000)).observed.state, a.name).toBe('running');
    // Each start outlasted the backstop: the replica that recorded it leaves it alone, the other
    // publishes it again, and the server drops that copy.
    for (const a of starts) expect(published.counts.get(a.taskId!), a.name).toBe(2);
    for (const a of starts) expect(await boots(s, a.domainId), a.name).toBe(1);
    published.stop();
  }, 120_000);
});
