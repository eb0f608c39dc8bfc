import { afterEach, describe, expect, it } from 'vitest';
import type { CommandAccepted } from '../../client/index.ts';
import type { RecordedEvent } from '../../platform/event-store.ts';
import { DEADLINE_CHECKPOINTS } from '../../platform/provision.ts';
import { startStack, testDriverState, type Stack } from '../fixtures/stack.ts';
import { countPublished, readLog } from './log-audit.ts';

/**
 * Deadlines come from the log, not from the process that dispatched: a command service killed with
 * operations in flight, or one of two replicas killed, still records each missed deadline once and
 * on time, and a host that comes back late leaves nothing pending.
 */
const ON_TIME_MS = 2000;
/** A host away for these tests is late, not lost: its lease outlasts them (losing one is host-loss.test.ts). */
const AWAY_NOT_LOST = { VIRTPLANE_LEASE_TTL_MS: '600000', VIRTPLANE_FENCE_MS: '300000' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const defineAll = async (stack: Stack, names: string[]) => {
  for (const name of names) await stack.client.define({ definition: { name, memoryKiB: 65536, vcpus: 1 } });
};

/** For each accepted start: the intent's deadline and every failure recorded for its task. */
const deadlineOutcomes = async (stack: Stack, accepted: CommandAccepted[]) => {
  const events = (await readLog(stack.nats.nats, 'ev.domain.>')).flatMap((c) => c.events);
  return accepted.map((a) => {
    const intent = events.find((e) => e.id === a.taskId) as RecordedEvent & { data: { deadline: string } };
    const failures = events.filter((e) => e.type === 'DomainOperationFailed' && (e.data as { taskId: string }).taskId === a.taskId);
    const deadline = Date.parse(intent.data.deadline);
    return { name: a.name, deadline, failures, lateByMs: failures.map((f) => Date.parse(f.time) - deadline) };
  });
};

const waitPast = async (deadlines: number[]) => {
  await sleep(Math.max(...deadlines) - Date.now() + ON_TIME_MS + 1000);
};

const expectRecordedOnceOnTime = (outcomes: Awaited<ReturnType<typeof deadlineOutcomes>>) => {
  console.log(JSON.stringify({ expiries: outcomes.length, lateByMs: outcomes.map((o) => o.lateByMs) }));
  for (const o of outcomes) {
    expect(o.failures, o.name).toHaveLength(1);
    expect((o.failures[0]!.data as { error: { code: string } }).error.code, o.name).toBe('timeout');
    expect(Math.abs(o.lateByMs[0]!), o.name).toBeLessThanOrEqual(ON_TIME_MS);
  }
};

const expectNothingPending = async (stack: Stack, prefix: string, count: number) => {
  const views = await stack.client.list({ all: true, name: prefix });
  expect(views).toHaveLength(count);
  for (const v of views) {
    expect(v.pending, v.name).toBeNull();
    expect(v.lastError?.code, v.name).toBe('timeout');
  }
};

describe('operation deadlines under faults', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('a command service killed with operations pending records each deadline on time once it is back; a late host changes nothing', async () => {
    stack = await startStack({ env: AWAY_NOT_LOST });
    const s = stack;
    const names = Array.from({ length: 12 }, (_, i) => `dk-${i}`);
    await defineAll(s, names);
    await s.kill('host-agent');
    // Deadlines fall after the command service is back: the restart itself takes a few seconds here.
    const accepted = await Promise.all(names.map((n, i) => s.client.start(n, { timeoutSeconds: 20 + (i % 4) })));
    // A clean stop leaves a checkpoint of what is in flight; the next start reads on from it.
    await s.kill('command', 'SIGTERM');
    const checkpoint = await (await s.nats.nats.kvm.open(DEADLINE_CHECKPOINTS)).get('ev.domain');
    const saved = checkpoint?.json<{ pending: Array<{ taskId: string }> }>().pending.map((p) => p.taskId) ?? [];
    for (const a of accepted) expect(saved).toContain(a.taskId);
    await s.start('command');
    // A crash leaves nothing: the keeper that comes back knows the same from the checkpoint and the log.
    await s.kill('command');
    await s.start('command');
    const deadlines = (await deadlineOutcomes(s, accepted)).map((o) => o.deadline);
    expect(Math.min(...deadlines)).toBeGreaterThan(Date.now());
    await waitPast(deadlines);
    expectRecordedOnceOnTime(await deadlineOutcomes(s, accepted));
    await expectNothingPending(s, 'dk-', names.length);

    // The host comes back after the deadlines: its old tasks are refused, nothing boots, nothing pends.
    await s.start('host-agent');
    await sleep(3000);
    const guests = await testDriverState(s);
    for (const n of names) expect(guests.find((g) => g.name === n)?.boots ?? 0, n).toBe(0);
    await expectNothingPending(s, 'dk-', names.length);
    // And the domains are free for the next operation.
    expect((await s.client.outcome(await s.client.start('dk-0'), 30_000)).observed.state).toBe('running');
  }, 180_000);

  it('two command-service replicas: every task published once, every guest booted once, every deadline recorded once even with one replica killed', async () => {
    stack = await startStack({ services: [], env: AWAY_NOT_LOST });
    const s = stack;
    await s.start('command', {}, 'command-1');
    await s.start('command', {}, 'command-2');
    await s.start('projector');
    await s.start('host-agent');
    const published = countPublished(s.nats.nats, 'task.>');

    const N = 120;
    const names = Array.from({ length: N }, (_, i) => `two-${i}`);
    const starts: CommandAccepted[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = next++; i < N; i = next++) {
          await s.client.define({ definition: { name: names[i]!, memoryKiB: 65536, vcpus: 1 } });
          starts.push(await s.client.start(names[i]!, { timeoutSeconds: 120 }));
        }
      }),
    );
    for (const a of starts) expect((await s.client.outcome(a, 120_000)).observed.state, a.name).toBe('running');
    const guests = (await testDriverState(s)).filter((g) => g.name.startsWith('two-'));
    expect(guests).toHaveLength(N);
    for (const g of guests) expect(g.boots, g.name).toBe(1);
    for (const a of starts) expect(published.counts.get(a.taskId!), a.name).toBe(1);
    expect([...published.counts.values()].filter((c) => c > 1)).toEqual([]);

    // Deadlines with both replicas running, then with one killed while the operations are pending.
    const late = Array.from({ length: 10 }, (_, i) => `two-late-${i}`);
    await defineAll(s, late);
    await s.kill('host-agent');
    const first = await Promise.all(late.slice(0, 5).map((n) => s.client.start(n, { timeoutSeconds: 4 })));
    await waitPast((await deadlineOutcomes(s, first)).map((o) => o.deadline));
    expectRecordedOnceOnTime(await deadlineOutcomes(s, first));

    const second = await Promise.all(late.slice(5).map((n) => s.client.start(n, { timeoutSeconds: 4 })));
    await s.kill('command-1');
    await waitPast((await deadlineOutcomes(s, second)).map((o) => o.deadline));
    expectRecordedOnceOnTime(await deadlineOutcomes(s, second));
    await expectNothingPending(s, 'two-late-', late.length);
    published.stop();
  }, 300_000);

  it('operations that outlast their deadline on the host: recorded once on time, and a report that comes late leaves the view equal to the host', async () => {
    stack = await startStack({ env: { VIRTPLANE_TEST_LATENCY_MS: '4000' } });
    const s = stack;
    const aborted = Array.from({ length: 5 }, (_, i) => `slow-${i}`);
    const late = Array.from({ length: 5 }, (_, i) => `slowlate-${i}`);
    await defineAll(s, [...aborted, ...late]);

    // The host gives up at the deadline too: its failure and the keeper's expiry are one record.
    const first = await Promise.all(aborted.map((n) => s.client.start(n, { timeoutSeconds: 2 })));
    await waitPast((await deadlineOutcomes(s, first)).map((o) => o.deadline));
    await sleep(1000);
    expectRecordedOnceOnTime(await deadlineOutcomes(s, first));
    await expectNothingPending(s, 'slow-', aborted.length);

    // The host finishes inside the deadline, but nobody records it until after: the command service
    // is down from before the host is done until after the deadline.
    const second = await Promise.all(late.map((n) => s.client.start(n, { timeoutSeconds: 6 })));
    await sleep(1500);
    await s.kill('command');
    await waitPast((await deadlineOutcomes(s, second)).map((o) => o.deadline));
    await s.start('command');
    // The host's retried report reaches the restarted service a few seconds later: wait for the
    // view to agree with the host, which it must come to.
    const end = Date.now() + 30_000;
    const settled = async () => {
      const views = await s.client.list({ all: true, name: 'slowlate-' });
      const guests = await testDriverState(s);
      const agree = views.every((v) => v.pending === null && v.observed.state === (guests.find((g) => g.name === v.name)?.state ?? 'shutoff'));
      return { views, guests, agree };
    };
    let now = await settled();
    while (!now.agree && Date.now() < end) {
      await sleep(500);
      now = await settled();
    }
    const { views, guests } = now;
    for (const v of views) {
      expect(v.pending, v.name).toBeNull();
      const g = guests.find((x) => x.name === v.name);
      expect(v.observed.state, v.name).toBe(g?.state ?? 'shutoff');
      expect(g?.boots ?? 0, v.name).toBeLessThanOrEqual(1);
    }
    // Each task ends in exactly one outcome in the log.
    const events = (await readLog(s.nats.nats, 'ev.domain.>')).flatMap((c) => c.events);
    for (const a of second) {
      const outcomes = events.filter((e) => (e.type === 'DomainOperationFailed' || e.type === 'DomainOperationCompleted') && (e.data as { taskId: string }).taskId === a.taskId);
      expect(outcomes, a.name).toHaveLength(1);
    }
    console.log(JSON.stringify({ lateReports: views.map((v) => `${v.name}:${v.observed.state}:${v.lastError?.code ?? 'completed'}`) }));
  }, 180_000);
});
