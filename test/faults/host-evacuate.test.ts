import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../platform/config.ts';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { evacuateHost } from '../../client/evacuation.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { BUCKETS, STREAMS, subjects } from '../../contracts/subjects.ts';
import { testDriverState, type Stack } from '../fixtures/stack.ts';
import { defineAndStart, defineOn, domainEventCounts, hostEvents, hostOf, sleep, startTwoHosts, TIMINGS, until } from '../fixtures/hosts.ts';

/** Samples both hosts' test-driver state files: the most copies of one guest seen running at once. */
const copies = (s: Stack) => {
  let stop = false;
  let max = 0;
  let samples = 0;
  const done = (async () => {
    while (!stop) {
      const [a, b] = await Promise.all([testDriverState(s, 'host-a'), testDriverState(s, 'host-b')]);
      const n = new Map<string, number>();
      for (const g of [...a, ...b]) if (g.state === 'running' || g.state === 'paused') n.set(g.uuid, (n.get(g.uuid) ?? 0) + 1);
      for (const c of n.values()) max = Math.max(max, c);
      samples++;
      await sleep(20);
    }
  })();
  return {
    async stop() {
      stop = true;
      await done;
      return { max, samples };
    },
  };
};

describe('evacuating and removing hosts', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('two operators evacuate a live host at once: each domain is stopped there, then moved and started elsewhere exactly once; the empty host is removed and its agent refused until readmitted', async () => {
    stack = await startTwoHosts();
    const s = stack;
    const running = ['ev-0', 'ev-1', 'ev-ha'];
    for (const n of running) await defineAndStart(s, n, n === 'ev-ha');
    await defineOn(s, 'ev-off', false);
    const ids = new Map<string, string>();
    for (const n of [...running, 'ev-off']) ids.set(n, (await s.client.get(n)).id);
    // Not while it has domains.
    const early = await s.client.hostRemove('host-a').catch((e: unknown) => e);
    expect(isVirtError(early) && early.code).toBe('operation-invalid');
    expect(String((early as Error).message)).toContain('still has 4 domain(s)');

    const watch = copies(s);
    const progress: number[] = [];
    const [one, two] = await Promise.all([
      evacuateHost(s.client, 'host-a', { timeoutMs: 60_000, onProgress: (p) => progress.push(p.done) }),
      evacuateHost(s.client, 'host-a', { timeoutMs: 60_000 }),
    ]);
    const seen = await watch.stop();
    for (const r of [one, two]) {
      expect(r.map((d) => [d.name, d.outcome, d.hostId]).sort()).toEqual([...running, 'ev-off'].sort().map((n) => [n, 'moved', 'host-b']));
    }
    expect(progress.at(-1)).toBe(4);
    for (const n of running) expect((await s.client.get(n)).observed.state, n).toBe('running');
    expect((await s.client.get('ev-off')).observed.state).toBe('shutoff');
    const onB = await testDriverState(s, 'host-b');
    for (const n of running) expect(onB.find((g) => g.uuid === ids.get(n))?.boots, n).toBe(1);
    for (const g of await testDriverState(s, 'host-a')) expect(g.state, g.name).toBe('shutoff');
    const moves = await domainEventCounts(s, 'DomainEvacuated');
    for (const n of [...running, 'ev-off']) expect(moves.get(ids.get(n)!), n).toBe(1);
    expect((await domainEventCounts(s, 'DomainEvacuationStarted')).size).toBe(4);
    expect(seen.max).toBe(1);
    expect(await hostOf(s, 'host-a')).toMatchObject({ maintenance: true, domains: 0 });

    // Empty now: removed once; its lease goes and its agent, still running, is refused.
    const removed = await s.client.hostRemove('host-a');
    expect(removed.removed).toBe(true);
    await s.client.hostRemove('host-a');
    expect((await hostEvents(s, 'host-a')).filter((e) => e.type === 'HostRemoved')).toHaveLength(1);
    const registrations = (await hostEvents(s, 'host-a')).filter((e) => e.type === 'HostRegistered').length;
    const leases = await s.nats.nats.kvm.open(BUCKETS.hostLiveness);
    await sleep(4 * TIMINGS.leaseTtlMs);
    const lease = await leases.get('host-a');
    expect(lease === null || lease.operation !== 'PUT').toBe(true);
    expect((await hostEvents(s, 'host-a')).filter((e) => e.type === 'HostRegistered')).toHaveLength(registrations);
    expect((await hostEvents(s, 'host-a')).filter((e) => e.type === 'HostLost')).toHaveLength(0);
    expect(await hostOf(s, 'host-a')).toMatchObject({ removed: true, alive: false });
    const placed = await s.client.define({ definition: { name: 'ev-new', memoryKiB: 65536, vcpus: 1 } });
    expect((await s.client.get('ev-new', { minVersion: placed.version })).hostId).toBe('host-b');
    // A report from it about a domain it had is refused: the domain moved.
    const late = await s.nats.nats.nc.request(subjects.agent('host-a', 'report'), JSON.stringify({ kind: 'observed', reportId: 'late-from-removed', domainId: ids.get('ev-0'), observed: { state: 'running', reason: 'booted' } }));
    expect(JSON.parse(new TextDecoder().decode(late.data)).error?.code).toBe('unauthorized');

    // Enrolled again: it registers by itself, and stays out of placement until an operator says.
    expect((await s.client.hostReadmit('host-a')).readmitted).toBe(true);
    const back = await until('host-a registered again', async () => {
      const h = await hostOf(s, 'host-a');
      return h && !h.removed && h.alive && h;
    });
    expect(back.maintenance).toBe(true);
  }, 240_000);

  it('a lost host: evacuate refuses its unknown domains until --force, then moves them (restarting those that ran) and the host can be removed', async () => {
    stack = await startTwoHosts();
    const s = stack;
    await defineAndStart(s, 'lost-run', false);
    await defineOn(s, 'lost-off', false);
    await s.kill('agent-a', 'SIGKILL');
    await until('host-a lost', async () => (await hostOf(s, 'host-a'))?.lost);
    // Every domain of the lost host is unknown, the shut off one too, in every view.
    const off = await until('lost-off unknown', async () => {
      const v = await s.client.get('lost-off');
      return v.hostLost && v;
    });
    expect(off).toMatchObject({ observed: { state: 'nostate' }, lastObserved: { state: 'shutoff' } });
    expect((await s.client.list({ name: 'lost-' })).map((v) => v.observed.state)).toEqual(['nostate', 'nostate']);
    const start = await s.client.start('lost-off').catch((e: unknown) => e);
    expect(isVirtError(start) && start.code).toBe('operation-invalid');

    const refused = await evacuateHost(s.client, 'host-a', { timeoutMs: 30_000 });
    expect(refused.map((d) => d.outcome)).toEqual(['refused', 'refused']);
    expect(refused[0]!.error).toContain('--force');
    const forced = await evacuateHost(s.client, 'host-a', { force: true, timeoutMs: 60_000 });
    expect(forced.map((d) => [d.name, d.outcome, d.hostId, d.state]).sort()).toEqual([
      ['lost-off', 'moved', 'host-b', 'shutoff'],
      ['lost-run', 'moved', 'host-b', 'running'],
    ]);
    expect((await s.client.hostRemove('host-a')).removed).toBe(true);
    expect(await hostOf(s, 'host-a')).toMatchObject({ removed: true });
  }, 180_000);

  it('an HA domain whose start is pending when its host is lost: the start fails at once and it runs elsewhere exactly once', async () => {
    stack = await startTwoHosts();
    const s = stack;
    await defineOn(s, 'pend-ha', true);
    await s.kill('agent-a', 'SIGKILL');
    const accepted = await s.client.start('pend-ha', { timeoutSeconds: 600 });
    const deadline = Date.parse((await s.client.get('pend-ha', { minVersion: accepted.version })).pending!.deadline);
    const v = await until('pend-ha running on host-b', async () => {
      const v = await s.client.get('pend-ha');
      return v.hostId === 'host-b' && v.observed.state === 'running' && v;
    });
    const events = (await domainEventCounts(s, 'DomainFailedOver')).get(v.id);
    expect(events).toBe(1);
    const failed = (await s.nats.nats.jsm.streams.getMessage(STREAMS.events, { last_by_subj: `ev.domain.${v.id}` })) !== null;
    expect(failed).toBe(true);
    expect((await testDriverState(s, 'host-b')).find((g) => g.uuid === v.id)?.boots).toBe(1);
    // Long before the start's own deadline of ten minutes.
    expect(Date.now()).toBeLessThan(deadline - 500_000);
    await sleep(2 * TIMINGS.leaseTtlMs);
    expect((await domainEventCounts(s, 'DomainFailedOver')).get(v.id)).toBe(1);
  }, 120_000);

  it('level-triggered agent: a start whose task never reached the host is run by its resync; a guest that died while the agent was away is reported', async () => {
    // The default lease timings: this is about drift, not loss, and a loaded machine must not fence the host.
    stack = await startTwoHosts({ env: { VIRTPLANE_RESYNC_MS: '1000', VIRTPLANE_RENEW_MS: '2000', VIRTPLANE_FENCE_MS: '5000', VIRTPLANE_LEASE_TTL_MS: '8000', VIRTPLANE_LEASE_MARGIN_MS: '2000' } });
    const s = stack;
    const died = await defineAndStart(s, 'drift-died', false);
    await defineOn(s, 'drift-missed', false);
    await s.kill('agent-a', 'SIGTERM');
    // The task is lost (a consumer made anew, a server that lost it): purged from the work queue.
    const accepted = await s.client.start('drift-missed', { timeoutSeconds: 120 });
    await until('the task queued', async () => (await s.nats.nats.jsm.streams.info(STREAMS.tasks, { subjects_filter: subjects.task('host-a') })).state.messages > 0);
    await s.nats.nats.jsm.streams.purge(STREAMS.tasks, { filter: subjects.task('host-a') });
    // The guest that ran died while its agent was away.
    const file = join(s.dataDir, 'hosts', 'host-a', 'test-driver.json');
    const guests = await testDriverState(s, 'host-a');
    await writeFile(file, JSON.stringify({ version: 1, guests: guests.map((g) => (g.uuid === died.id ? { ...g, state: 'shutoff', reason: 'crashed' } : g)) }));
    await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-a' }, 'agent-a');
    const missed = await until('drift-missed running', async () => {
      const v = await s.client.get('drift-missed');
      return v.observed.state === 'running' && v.pending === null && v;
    });
    expect(missed.lastError).toBeNull();
    expect((await s.client.outcome(accepted, 5000)).observed.state).toBe('running');
    expect((await testDriverState(s, 'host-a')).find((g) => g.uuid === missed.id)?.boots).toBe(1);
    const d = await until('drift-died reported', async () => {
      const v = await s.client.get('drift-died');
      return v.observed.state === 'shutoff' && v;
    });
    expect(d.observed.reason).toBe('crashed');
  }, 180_000);

  it('through the CLI: host-evacuate moves the domains and says so, host-remove removes the empty host, bad input changes nothing', async () => {
    stack = await startTwoHosts();
    const s = stack;
    await defineAndStart(s, 'cli-ev', false);
    const cli = async (...args: string[]) =>
      promisify(execFile)(process.execPath, [join(PROJECT_ROOT, 'bin', 'virtplane.mjs'), ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: s.nats.url }, timeout: 120_000 }).then(
        (r) => ({ code: 0, out: r.stdout.trim(), err: r.stderr.trim() }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout.trim(), err: e.stderr.trim() }),
      );
    expect(await cli('host-remove', 'host-a')).toMatchObject({ code: 1, err: expect.stringContaining("still has 1 domain(s): run 'host-evacuate host-a' first [operation-invalid]") });
    expect(await cli('host-evacuate', 'no/such')).toMatchObject({ code: 1, err: expect.stringContaining('[invalid-arg]') });
    expect(await cli('host-remove', 'host-z')).toMatchObject({ code: 1, err: expect.stringContaining('[no-host]') });
    expect((await hostEvents(s, 'host-a')).map((e) => e.type)).not.toContain('HostMaintenanceSet');
    const ev = await cli('host-evacuate', 'host-a');
    expect(ev.code).toBe(0);
    expect(ev.out).toBe("Host 'host-a' evacuated: 1 of 1 domain(s) moved\n  cli-ev: moved to host-b (running)");
    expect(await cli('host-remove', 'host-a')).toMatchObject({ code: 0, out: expect.stringContaining("Host 'host-a' removed") });
    const list = await cli('host-list');
    expect(list.out).toMatch(/^ ?host-a\s+removed/m);
  }, 180_000);
});
