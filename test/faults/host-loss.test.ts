import { afterEach, describe, expect, it } from 'vitest';
import { isVirtError } from '../../contracts/errors.ts';
import type { LifecycleEvent } from '../../contracts/lifecycle.ts';
import { STREAMS, subjects } from '../../contracts/subjects.ts';
import type { DomainView } from '../../contracts/views.ts';
import { call } from '../../platform/rpc.ts';
import { decodeJson } from '../../platform/nats.ts';
import { startStack, testDriverState, type Stack } from '../fixtures/stack.ts';
import { defineAndStart, domainEventCounts, hostEvents, hostOf, sleep, startTwoHosts, TIMING_ENV, TIMINGS, until } from '../fixtures/hosts.ts';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy.ts';
import { readLog } from './log-audit.ts';

/** Losing a host, with two agents (host-a, host-b) on this machine, each with its own state dir and test driver. */

/** Each HA domain's restarts, from the log: DomainFailedOver events per domain. */
const failoversByDomain = (s: Stack) => domainEventCounts(s, 'DomainFailedOver');

const lastLifecycle = async (s: Stack, hostId: string, domainId: string): Promise<LifecycleEvent> => {
  const m = await s.nats.nats.jsm.streams.getMessage(STREAMS.lifecycle, { last_by_subj: subjects.lifecycle(hostId, domainId) });
  if (!m) throw new Error(`no lifecycle event for ${domainId}`);
  return decodeJson(m.data) as LifecycleEvent;
};

/**
 * Samples both hosts' test-driver state files: for every guest, on how many hosts it runs at once,
 * and when it was first seen paused on host-a and first seen running on host-b.
 */
const sampler = (s: Stack) => {
  let stop = false;
  let maxCopies = 0;
  const doubled = new Set<string>();
  const firstPausedOnA = new Map<string, number>();
  const firstRunningOnB = new Map<string, number>();
  let samples = 0;
  const done = (async () => {
    while (!stop) {
      const [a, b] = await Promise.all([testDriverState(s, 'host-a'), testDriverState(s, 'host-b')]);
      const now = Date.now();
      const running = new Map<string, number>();
      for (const g of [...a, ...b]) if (g.state === 'running') running.set(g.uuid, (running.get(g.uuid) ?? 0) + 1);
      for (const [uuid, n] of running) {
        maxCopies = Math.max(maxCopies, n);
        if (n > 1) doubled.add(uuid);
      }
      for (const g of a) if (g.state === 'paused' && !firstPausedOnA.has(g.uuid)) firstPausedOnA.set(g.uuid, now);
      for (const g of b) if (g.state === 'running' && !firstRunningOnB.has(g.uuid)) firstRunningOnB.set(g.uuid, now);
      samples++;
      await sleep(20);
    }
  })();
  return {
    get maxCopies() {
      return maxCopies;
    },
    doubled,
    firstPausedOnA,
    firstRunningOnB,
    get samples() {
      return samples;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
};

describe('losing a host', () => {
  let stack: Stack | undefined;
  let proxy: TcpProxy | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
    await proxy?.close();
    proxy = undefined;
  });

  it('SIGKILL of an agent running HA guests: the host is lost after its TTL, each HA guest runs on the other host exactly once, the others are unknown', async () => {
    stack = await startTwoHosts();
    const s = stack;
    const haNames = ['ha-0', 'ha-1', 'ha-2', 'ha-3'];
    const plainNames = ['plain-0', 'plain-1'];
    const views = new Map<string, DomainView>();
    for (const n of haNames) views.set(n, await defineAndStart(s, n, true));
    for (const n of plainNames) views.set(n, await defineAndStart(s, n, false));
    for (const v of views.values()) expect(v).toMatchObject({ hostId: 'host-a', observed: { state: 'running' } });

    await s.kill('agent-a', 'SIGKILL');
    const killedAt = Date.now();
    await until('host-a declared lost', async () => (await hostOf(s, 'host-a'))?.lost);
    // The HA guests may already be moving off it by the time the host list is read: between all six and the two plain ones.
    const lostHost = await hostOf(s, 'host-a');
    expect(lostHost).toMatchObject({ lost: true, alive: false });
    expect(lostHost?.domains).toBeGreaterThanOrEqual(2);
    expect(lostHost?.domains).toBeLessThanOrEqual(6);
    expect((await hostOf(s, 'host-b'))?.leaseAgeMs).toBeLessThan(TIMINGS.leaseTtlMs);
    const lostEvents = (await hostEvents(s, 'host-a')).filter((e) => e.type === 'HostLost');
    expect(lostEvents).toHaveLength(1);
    const lost = lostEvents[0]!.data as { leaseWrittenAt: string };
    // Safety: never before the lease's TTL ran out. Liveness: within TTL plus a few looks of the monitor.
    const afterLease = Date.parse(lostEvents[0]!.time) - Date.parse(lost.leaseWrittenAt);
    expect(afterLease).toBeGreaterThan(TIMINGS.leaseTtlMs);
    expect(afterLease).toBeLessThan(TIMINGS.leaseTtlMs + 5000);

    for (const n of haNames) {
      await until(`${n} running on host-b`, async () => {
        const v = await s.client.get(n);
        return v.hostId === 'host-b' && v.observed.state === 'running' && v.pending === null && v;
      });
    }
    const onB = await testDriverState(s, 'host-b');
    for (const n of haNames) {
      const v = await s.client.get(n);
      expect(onB.filter((g) => g.uuid === v.id)).toEqual([expect.objectContaining({ state: 'running', boots: 1 })]);
      expect(v.hostLost ?? false).toBe(false);
    }
    const failovers = await failoversByDomain(s);
    for (const n of haNames) expect(failovers.get(views.get(n)!.id), n).toBe(1);

    for (const n of plainNames) {
      const v = await until(`${n} unknown`, async () => {
        const v = await s.client.get(n);
        return v.hostLost && v;
      });
      expect(v).toMatchObject({ hostId: 'host-a', hostLost: true, observed: { state: 'nostate', reason: 'unknown' }, lastObserved: { state: 'running' } });
      expect(failovers.get(v.id)).toBeUndefined();
      // Commands answer at once instead of waiting for a deadline.
      const t0 = Date.now();
      const err = await s.client.shutdown(n).catch((e: unknown) => e);
      expect(isVirtError(err) && err.code).toBe('operation-invalid');
      expect(String((err as Error).message)).toContain('unknown (host lost)');
      expect(Date.now() - t0).toBeLessThan(5000);
      expect((await lastLifecycle(s, 'host-a', v.id)).event).toBe('UNKNOWN');
    }
    expect((await hostOf(s, 'host-a'))?.domains).toBe(2);
    // Listed without --all (it may still run), never as running.
    const listed = await s.client.list({ name: 'plain-' });
    expect(listed.map((v) => [v.name, v.observed.state])).toEqual(plainNames.map((n) => [n, 'nostate']));
    // The operator says the host is off: the domain is shut off, and free to start elsewhere later.
    await s.client.destroy('plain-0', { force: true });
    await until('plain-0 shut off', async () => (await s.client.get('plain-0')).observed.state === 'shutoff');
    console.log(JSON.stringify({ case: 'sigkill', lostAfterLeaseMs: afterLease, lostAfterKillMs: Date.parse(lostEvents[0]!.time) - killedAt }));
  }, 180_000);

  it('an agent cut off from NATS fences its guests before they restart elsewhere; back again, its stale guests are destroyed, its late word refused, nothing runs twice', async () => {
    stack = await startStack({ services: [], env: TIMING_ENV });
    const s = stack;
    proxy = await startTcpProxy(s.nats.server.port);
    await s.start('command');
    await s.start('projector');
    await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-a', VIRTPLANE_NATS_URL: proxy.url }, 'agent-a');
    await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-b' }, 'agent-b');
    const haNames = ['cut-ha-0', 'cut-ha-1', 'cut-ha-2'];
    const views = new Map<string, DomainView>();
    for (const n of haNames) views.set(n, await defineAndStart(s, n, true));
    views.set('cut-plain', await defineAndStart(s, 'cut-plain', false));
    const oldTask = (await readLog(s.nats.nats, `ev.domain.${views.get('cut-ha-0')!.id}`)).flatMap((c) => c.events).find((e) => e.type === 'DomainStartRequested')!;

    const watch = sampler(s);
    await proxy.cut();
    for (const n of haNames) {
      await until(`${n} running on host-b`, async () => {
        const v = await s.client.get(n);
        return v.hostId === 'host-b' && v.observed.state === 'running' && v;
      });
    }
    await until('both copies sampled', async () => haNames.every((n) => watch.firstRunningOnB.has(views.get(n)!.id)));
    // Fenced on host-a (paused by policy) before host-b ran it.
    for (const n of haNames) {
      const id = views.get(n)!.id;
      expect(watch.firstPausedOnA.get(id), n).toBeDefined();
      expect(watch.firstPausedOnA.get(id)!, n).toBeLessThan(watch.firstRunningOnB.get(id)!);
    }
    expect((await s.client.get('cut-plain')).hostLost).toBe(true);

    await proxy.restore();
    await until('host-a back', async () => {
      const h = await hostOf(s, 'host-a');
      return h && !h.lost && h.alive;
    });
    // Stale copies destroyed on host-a; the domain that stayed is told again (paused, as fenced).
    for (const n of haNames) {
      const id = views.get(n)!.id;
      await until(`${n} gone from host-a`, async () => (await testDriverState(s, 'host-a')).find((g) => g.uuid === id)?.state === 'shutoff');
    }
    const plain = await until('cut-plain known again', async () => {
      const v = await s.client.get('cut-plain');
      return !v.hostLost && v;
    });
    expect(plain.observed.state).toBe('paused');
    await watch.stop();

    // Late word from the old host is refused: a report about a moved domain, and its old task.
    const moved = views.get('cut-ha-0')!;
    const report = await call(s.nats.nats.nc, subjects.agent('host-a', 'report'), {
      kind: 'observed',
      reportId: 'late-report-from-host-a',
      domainId: moved.id,
      observed: { state: 'running', reason: 'booted' },
    }).catch((e: unknown) => e);
    expect(isVirtError(report) && report.code).toBe('unauthorized');
    const claim = await call<{ proceed: boolean }>(s.nats.nats.nc, subjects.agent('host-a', 'claim'), { taskId: oldTask.id, domainId: moved.id, placementEpoch: 1 });
    expect(claim.proceed).toBe(false);

    expect(watch.doubled).toEqual(new Set());
    expect(watch.maxCopies).toBe(1);
    const onB = await testDriverState(s, 'host-b');
    for (const n of haNames) expect(onB.find((g) => g.uuid === views.get(n)!.id)?.boots, n).toBe(1);
    const failovers = await failoversByDomain(s);
    for (const n of haNames) expect(failovers.get(views.get(n)!.id), n).toBe(1);
    const events = (await hostEvents(s, 'host-a')).map((e) => e.type);
    expect(events.filter((t) => t === 'HostLost')).toHaveLength(1);
    expect(events.filter((t) => t === 'HostReturned')).toHaveLength(1);
    console.log(JSON.stringify({ case: 'cut off', samples: watch.samples, maxCopies: watch.maxCopies }));
  }, 180_000);

  it('two command-service replicas, one killed as the host is lost and started again: the loss and each restart are recorded once', async () => {
    stack = await startStack({ services: [], env: TIMING_ENV });
    const s = stack;
    await s.start('command', {}, 'command-1');
    await s.start('command', {}, 'command-2');
    await s.start('projector');
    await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-a' }, 'agent-a');
    await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-b' }, 'agent-b');
    const names = ['rep-ha-0', 'rep-ha-1', 'rep-ha-2'];
    const ids = [];
    for (const n of names) ids.push((await defineAndStart(s, n, true)).id);
    await s.kill('agent-a', 'SIGKILL');
    await s.kill('command-1', 'SIGKILL');
    await sleep(TIMINGS.leaseTtlMs / 2);
    await s.start('command', {}, 'command-1');
    for (const n of names) {
      await until(`${n} running on host-b`, async () => {
        const v = await s.client.get(n);
        return v.hostId === 'host-b' && v.observed.state === 'running' && v;
      });
    }
    // Explicit placement on a lost host is refused.
    const refused = await s.client.define({ definition: { name: 'rep-late', memoryKiB: 65536, vcpus: 1 }, hostId: 'host-a' }).catch((e: unknown) => e);
    expect(isVirtError(refused) && refused.code).toBe('no-host');
    // Both replicas kept looking a while longer: nothing more is recorded.
    await sleep(2 * TIMINGS.leaseTtlMs);
    expect((await hostEvents(s, 'host-a')).filter((e) => e.type === 'HostLost')).toHaveLength(1);
    const failovers = await failoversByDomain(s);
    for (const id of ids) expect(failovers.get(id)).toBe(1);
    const onB = await testDriverState(s, 'host-b');
    for (const id of ids) expect(onB.find((g) => g.uuid === id)?.boots).toBe(1);
  }, 180_000);

  it('maintenance: no new domain is placed on the host while it is on; its domains stay; off gives it back', async () => {
    stack = await startTwoHosts();
    const s = stack;
    const kept = await defineAndStart(s, 'mnt-kept', false, 'host-a');
    expect((await s.client.hostMaintenance('host-a', true)).maintenance).toBe(true);
    // Level-triggered: repeating it records nothing new.
    const again = await s.client.hostMaintenance('host-a', true);
    const placed = [];
    for (let i = 0; i < 4; i++) placed.push(await s.client.define({ definition: { name: `mnt-${i}`, memoryKiB: 65536, vcpus: 1 } }));
    for (const p of placed) expect((await s.client.get(p.name, { minVersion: p.version })).hostId).toBe('host-b');
    expect((await s.client.get('mnt-kept')).observed.state).toBe('running');
    const info = await until('the view shows maintenance', async () => {
      const h = await s.client.host('host-a');
      return h.maintenance && h;
    });
    expect(info).toMatchObject({ alive: true, domains: 1, freeMemoryKiB: info.capabilities!.memoryKiB - kept.definition.memoryKiB });
    await s.client.hostMaintenance('host-a', false);
    expect((await hostEvents(s, 'host-a')).filter((e) => e.type === 'HostMaintenanceSet').map((e) => (e.data as { on: boolean }).on)).toEqual([true, false]);
    expect(again.version).toBeGreaterThan(0);
    // With host-b in maintenance now, the next domain can only go to host-a.
    await s.client.hostMaintenance('host-b', true);
    const d = await s.client.define({ definition: { name: 'mnt-next', memoryKiB: 65536, vcpus: 1 } });
    expect((await s.client.get('mnt-next', { minVersion: d.version })).hostId).toBe('host-a');
    const unknown = await s.client.hostMaintenance('host-z', true).catch((e: unknown) => e);
    expect(isVirtError(unknown) && unknown.code).toBe('no-host');
  }, 120_000);

  it('a pending operation on a host that is lost ends as failed at once, releasing the domain', async () => {
    stack = await startTwoHosts();
    const s = stack;
    await s.client.define({ definition: { name: 'pend-0', memoryKiB: 65536, vcpus: 1 }, hostId: 'host-a' });
    await s.kill('agent-a', 'SIGKILL');
    const accepted = await s.client.start('pend-0', { timeoutSeconds: 600 });
    const pending = (await s.client.get('pend-0', { minVersion: accepted.version })).pending;
    expect(pending?.op).toBe('start');
    await until('host-a declared lost', async () => (await hostOf(s, 'host-a'))?.lost);
    const v = await until('the start failed', async () => {
      const v = await s.client.get('pend-0');
      return v.pending === null && v;
    });
    expect(v.lastError).toMatchObject({ op: 'start', code: 'operation-failed', message: "host 'host-a' was lost while operation 'start' was in progress" });
    // Long before its deadline of ten minutes.
    expect(Date.parse(v.lastError!.at)).toBeLessThan(Date.parse(pending!.deadline) - 500_000);
    expect(v.hostLost).toBe(true);
    const again = await s.client.start('pend-0').catch((e: unknown) => e);
    expect(isVirtError(again) && again.code).toBe('operation-invalid');
  }, 120_000);
});
