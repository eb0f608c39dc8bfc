import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { subjects } from '../../contracts/subjects.ts';
import { call } from '../../platform/rpc.ts';
import { startStack, testDriverState, type Stack } from '../fixtures/stack.ts';
import { readLog } from './log-audit.ts';

/**
 * Snapshots under faults: an agent killed with SIGKILL while it takes one, tasks and reports
 * delivered twice, a host that reports for another host's domain, and hostile snapshot documents.
 * Each snapshot is taken once and recorded once, or cleanly failed, and nothing else changes.
 */
describe('snapshots under faults', () => {
  let stack: Stack;
  // Each host operation takes a while, so the agent can be killed in the middle of one.
  beforeAll(async () => {
    stack = await startStack({ env: { VIRTPLANE_TEST_LATENCY_MS: '1500' } });
    const c = stack.client;
    await c.define({ definition: { name: 'snapf', type: 'test', memoryKiB: 65536, vcpus: 1 } });
    await c.outcome(await c.start('snapf'), 30_000);
  }, 60_000);
  afterAll(async () => stack?.stop());

  const hostSnapshots = async () => ((await testDriverState(stack)).find((g) => g.name === 'snapf') as unknown as { snapshots?: string[] })?.snapshots ?? [];
  const outcomesOf = async (taskId: string) =>
    (await readLog(stack.nats.nats, 'ev.domain.>'))
      .flatMap((c) => c.events)
      .filter((e) => (e.type === 'DomainOperationCompleted' || e.type === 'DomainOperationFailed') && (e.data as { taskId: string }).taskId === taskId);

  it('an agent killed with SIGKILL mid-snapshot takes it once when it is back, and the log records it once', async () => {
    const c = stack.client;
    const accepted = await c.snapshotCreate('snapf', { name: 'k1' }, { timeoutSeconds: 120 });
    // The agent has claimed the task and is inside the driver's operation.
    await sleep(700);
    await stack.kill('host-agent');
    expect((await c.get('snapf')).snapshots ?? []).toEqual([]);
    await stack.start('host-agent');
    const v = await c.outcome(accepted, 60_000);
    expect(v.snapshots?.map((x) => x.name)).toEqual(['k1']);
    expect(v.currentSnapshot).toBe('k1');
    expect(await hostSnapshots()).toEqual(['k1']);
    expect(await outcomesOf(accepted.taskId!)).toHaveLength(1);
  }, 120_000);

  it('a command, a task and a report delivered twice change nothing the second time', async () => {
    const c = stack.client;
    const first = await c.snapshotCreate('snapf', { name: 'd1' }, { commandId: 'snap-dup-1', timeoutSeconds: 60 });
    await c.outcome(first, 30_000);
    const again = await c.snapshotCreate('snapf', { name: 'd1' }, { commandId: 'snap-dup-1', timeoutSeconds: 60 });
    expect(again).toMatchObject({ duplicate: true, version: first.version });

    const before = await c.get('snapf');
    // The task once more, as JetStream would redeliver it: the claim refuses a task no longer pending.
    const claim = await call<{ proceed: boolean }>(stack.nats.nats.nc, subjects.agent(stack.hostId, 'claim'), { taskId: first.taskId, domainId: before.id, placementEpoch: before.placementEpoch });
    expect(claim.proceed).toBe(false);
    // The outcome reported once more (the agent's retry after a lost reply): nothing is recorded.
    const report = await call<{ recorded: boolean }>(stack.nats.nats.nc, subjects.agent(stack.hostId, 'report'), {
      kind: 'completed',
      reportId: `${first.taskId}:outcome`,
      domainId: before.id,
      taskId: first.taskId,
      observed: before.observed,
    });
    expect(report.recorded).toBe(false);
    const after = await c.get('snapf');
    expect(after.version).toBe(before.version);
    expect(after.snapshots?.map((x) => x.name)).toEqual(['k1', 'd1']);
    expect(await hostSnapshots()).toEqual(['k1', 'd1']);
    expect(await outcomesOf(first.taskId!)).toHaveLength(1);
  }, 60_000);

  it("a host's report of a snapshot for another host's domain is refused and records nothing", async () => {
    const c = stack.client;
    await stack.kill('host-agent');
    const pending = await c.snapshotCreate('snapf', { name: 'h1' }, { timeoutSeconds: 120 });
    // The view as of the request at least: an older one would make any later read look like a change.
    const v = await c.get('snapf', { minVersion: pending.version });
    const forged = await call(stack.nats.nats.nc, subjects.agent('host-b', 'report'), {
      kind: 'completed',
      reportId: 'forged-snapshot-report-1',
      domainId: v.id,
      taskId: pending.taskId,
      observed: v.observed,
    }).then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
    expect(forged).toMatchObject({ code: 'unauthorized', message: `host 'host-b' does not own domain ${v.id}` });
    const still = await c.get('snapf');
    expect(still.version).toBe(v.version);
    expect(still.pending?.taskId).toBe(pending.taskId);
    expect(still.snapshots?.map((x) => x.name)).toEqual(['k1', 'd1']);
    // Its own host takes it once it is back.
    await stack.start('host-agent');
    expect((await c.outcome(pending, 60_000)).snapshots?.map((x) => x.name)).toEqual(['k1', 'd1', 'h1']);
    expect(await hostSnapshots()).toEqual(['k1', 'd1', 'h1']);
  }, 120_000);

  it('a hostile or malformed snapshot document is an xml-error and changes nothing', async () => {
    const c = stack.client;
    const before = await c.get('snapf');
    const bomb = `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><domainsnapshot><name>&b;</name></domainsnapshot>`;
    const external = `<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><domainsnapshot><name>&x;</name></domainsnapshot>`;
    const cases = [
      bomb,
      external,
      '<domain><name>x</name></domain>',
      '<domainsnapshot><name>a/b</name></domainsnapshot>',
      '<domainsnapshot><name>ok</name><script/></domainsnapshot>',
      '<domainsnapshot><name>unclosed</domainsnapshot>',
      `<domainsnapshot><name>big</name><description>${'x'.repeat(1_100_000)}</description></domainsnapshot>`,
    ];
    for (const xml of cases) {
      const e = await c.snapshotCreate('snapf', { xml }).then(
        () => null,
        (err: { code?: string }) => err,
      );
      expect(e?.code, xml.slice(0, 60)).toBe('xml-error');
    }
    // A name with a slash is refused before it reaches a host, as a request field too.
    await expect(c.snapshotCreate('snapf', { name: 'a/b' })).rejects.toMatchObject({ code: 'invalid-arg' });
    const after = await c.get('snapf');
    expect(after.version).toBe(before.version);
    expect(after.snapshots).toEqual(before.snapshots);
  }, 60_000);
});
