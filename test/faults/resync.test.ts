import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isVirtError } from '../../contracts/errors.ts';
import { qemuAvailable } from '../../drivers/qemu/index.ts';
import { QemuDriver } from '../../drivers/qemu/driver.ts';
import { processState } from '../../drivers/qemu/host.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole } from '../fixtures/guest/build.ts';
import { defineAndStart, defineOn, sleep, startTwoHosts, until } from '../fixtures/hosts.ts';
import { startStack, testDriverState, type Stack } from '../fixtures/stack.ts';
import { readLog } from './log-audit.ts';

/**
 * Drift on a running agent: the hypervisor changes behind its back, no event says so, and only the
 * periodic resync (VIRTPLANE_RESYNC_MS) or the ownership check finds it. Each case asserts the log
 * and the views afterwards.
 */

// Lease timings well clear of a loaded machine: this is about drift, not loss; the agent must not fence.
const DRIFT_ENV = {
  VIRTPLANE_RESYNC_MS: '500',
  VIRTPLANE_RENEW_MS: '1000',
  VIRTPLANE_FENCE_MS: '5000',
  VIRTPLANE_LEASE_TTL_MS: '8000',
  VIRTPLANE_LEASE_MARGIN_MS: '2000',
};
/** The agent takes its own recent changes for news the views have not shown yet (2 × ack wait). */
const ACTED_RECENTLY_MS = 2 * 2000;

/** What each domain's log says the host observed that no operation asked for. */
const observedEvents = async (s: Stack, id: string) =>
  (await readLog(s.nats.nats, `ev.domain.${id}`)).flatMap((c) => c.events).filter((e) => e.type === 'DomainStateObserved').map((e) => e.data as { state: string; reason: string; cause?: string });

describe('drift on a running test-driver host', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it('a guest started behind the agent is reported running, one that died is reported crashed, one whose domain is another host\'s is destroyed: while the agent runs', async () => {
    stack = await startTwoHosts({ env: DRIFT_ENV });
    const s = stack;
    const agentPid = s.services.get('agent-a')!.child.pid;
    await defineOn(s, 'drift-behind', false);
    await defineOn(s, 'drift-moved', false, 'host-b');
    const dies = await defineAndStart(s, 'drift-dies', false);
    const behind = await s.client.get('drift-behind');
    const moved = await s.client.get('drift-moved');
    await sleep(ACTED_RECENTLY_MS + 500);

    // The simulated host changes as a hypervisor's guests would, written whole and renamed over its file.
    const file = join(s.dataDir, 'hosts', 'host-a', 'test-driver.json');
    const doc = JSON.parse(await readFile(file, 'utf8')) as { version: 1; guests: Array<Record<string, unknown> & { uuid: string }> };
    const runningGuest = (v: typeof behind) => ({
      uuid: v.id,
      name: v.name,
      type: v.definition.type,
      state: 'running',
      reason: 'booted',
      onPoweroff: v.definition.onPoweroff,
      onReboot: v.definition.onReboot,
      onCrash: v.definition.onCrash,
      boots: 1,
      reboots: 0,
    });
    const guests = [...doc.guests.map((g) => (g.uuid === dies.id ? { ...g, state: 'shutoff', reason: 'crashed' } : g)), runningGuest(behind), runningGuest(moved)];
    await writeFile(`${file}.elsewhere`, JSON.stringify({ version: 1, guests }));
    await rename(`${file}.elsewhere`, file);
    const drifted = Date.now();

    const repaired: Record<string, number> = {};
    await until('every drift repaired', async () => {
      if (!repaired.behind && (await s.client.get('drift-behind')).observed.state === 'running') repaired.behind = Date.now() - drifted;
      const d = await s.client.get('drift-dies');
      if (!repaired.dies && d.observed.state === 'shutoff') repaired.dies = Date.now() - drifted;
      const onA = await testDriverState(s, 'host-a');
      if (!repaired.moved && onA.find((g) => g.uuid === moved.id)?.state === 'shutoff') repaired.moved = Date.now() - drifted;
      return repaired.behind && repaired.dies && repaired.moved;
    }, 60_000);

    // Reported as the host sees it, by the resync, with nobody restarting the agent.
    expect(s.services.get('agent-a')!.child.pid).toBe(agentPid);
    expect(await observedEvents(s, behind.id)).toEqual([{ state: 'running', reason: 'booted', cause: 'found by resync' }]);
    expect(await observedEvents(s, dies.id)).toEqual([{ state: 'shutoff', reason: 'crashed', cause: 'found by resync' }]);
    expect((await s.client.get('drift-behind')).observed).toMatchObject({ state: 'running', reason: 'booted' });
    expect((await s.client.get('drift-dies')).observed).toMatchObject({ state: 'shutoff', reason: 'crashed' });
    // The moved one: destroyed on host-a, its report refused, its domain untouched on host-b.
    const onA = await testDriverState(s, 'host-a');
    expect(onA.find((g) => g.uuid === moved.id)).toMatchObject({ state: 'shutoff' });
    expect(await observedEvents(s, moved.id)).toEqual([]);
    expect(await s.client.get('drift-moved')).toMatchObject({ hostId: 'host-b', observed: { state: 'shutoff' }, version: moved.version });

    // The log and the host agree again: verbs act on what really runs.
    await s.client.outcome(await s.client.start('drift-dies', { timeoutSeconds: 60 }), 30_000);
    expect((await testDriverState(s, 'host-a')).find((g) => g.uuid === dies.id)).toMatchObject({ state: 'running', boots: 2 });
    const stopped = await s.client.outcome(await s.client.destroy('drift-behind', { timeoutSeconds: 60 }), 30_000);
    expect(stopped.observed).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
    await sleep(2000);
    // Nothing more was found once the two agreed.
    expect(await observedEvents(s, behind.id)).toHaveLength(1);
    expect(await observedEvents(s, dies.id)).toHaveLength(1);
    console.log(JSON.stringify({ case: 'test-driver drift', resyncMs: Number(DRIFT_ENV.VIRTPLANE_RESYNC_MS), repairedAfterMs: repaired }));
  }, 180_000);
});

const availability = await qemuAvailable();

describe.skipIf(!availability.ok)('drift with real qemu guests', () => {
  let stack: Stack | undefined;
  const type = availability.kvm ? 'kvm' : 'qemu';
  afterEach(async () => {
    for (const v of (await stack?.client.list({ all: false }).catch(() => [])) ?? []) {
      await stack!.client.destroy(v.id).then((a) => stack!.client.outcome(a, 60_000)).catch(() => undefined);
    }
    await stack?.stop();
    stack = undefined;
  });

  const startQemuHost = async (env: Record<string, string> = {}) => {
    const s = await startStack({ services: [], env: { ...DRIFT_ENV, VIRTPLANE_DRIVER: 'qemu', ...env } });
    await s.start('command');
    await s.start('projector');
    await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-a' }, 'agent-a');
    return s;
  };

  it('a qemu guest started by hand beside the agent is reported running by the resync; killed, it is reported crashed', async () => {
    const guest = await buildTinyGuest();
    stack = await startQemuHost();
    const s = stack;
    await s.client.define({ xml: tinyGuestXml(guest, { name: 'q-behind', type, memoryMiB: 96 }), hostId: 'host-a' });
    const v = await s.client.get('q-behind');
    const stateDir = join(s.dataDir, 'hosts', 'host-a');
    // Started behind the agent's back, as `qemu` run by an operator under the host's state directory.
    const hand = new QemuDriver({ stateDir, destroyGraceMs: 3000 });
    await hand.start(v.definition);
    const pid = hand.pid(v.id)!;
    await hand.close();
    const startedAt = Date.now();
    const running = await until('q-behind reported running', async () => {
      const x = await s.client.get('q-behind');
      return x.observed.state === 'running' && x;
    }, 60_000);
    const foundAfterMs = Date.now() - startedAt;
    expect(running).toMatchObject({ hostId: 'host-a', pending: null, observed: { state: 'running' } });
    expect(await observedEvents(s, v.id)).toEqual([{ state: 'running', reason: running.observed.reason, cause: 'found by resync' }]);

    await waitForConsole(join(stateDir, 'qemu', v.id, 'console.log'), READY_MARKER, { timeoutMs: 120_000 });
    process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    const dead = await until('q-behind reported dead', async () => {
      const x = await s.client.get('q-behind');
      return x.observed.state === 'shutoff' && x;
    }, 60_000);
    const reportedDeadAfterMs = Date.now() - killedAt;
    expect(dead.observed.reason).toBe('crashed');
    expect(await processState(pid)).not.toBe('alive');
    const events = await observedEvents(s, v.id);
    expect(events.map((e) => [e.state, e.reason])).toEqual([
      ['running', running.observed.reason],
      ['shutoff', 'crashed'],
    ]);
    console.log(JSON.stringify({ case: 'qemu drift', resyncMs: Number(DRIFT_ENV.VIRTPLANE_RESYNC_MS), foundRunningAfterMs: foundAfterMs, reportedDeadAfterMs, deathCause: events[1]?.cause }));
  }, 300_000);

  it('a shutdown the guest ignores for 4 s completes through the agent: ACPI is pressed again until it powers off', async () => {
    const guest = await buildTinyGuest();
    stack = await startQemuHost({ VIRTPLANE_ACPI_RESEND_MS: '500' });
    const s = stack;
    await s.client.define({ xml: tinyGuestXml(guest, { name: 'q-deaf', type, memoryMiB: 96, extraCmdline: 'vp.deaf=4' }), hostId: 'host-a' });
    const v = await s.client.outcome(await s.client.start('q-deaf', { timeoutSeconds: 120 }), 120_000);
    expect(v.observed.state).toBe('running');
    const consoleLog = join(s.dataDir, 'hosts', 'host-a', 'qemu', v.id, 'console.log');
    await waitForConsole(consoleLog, READY_MARKER, { timeoutMs: 120_000 });
    const asked = Date.now();
    const done = await s.client.outcome(await s.client.shutdown('q-deaf', { timeoutSeconds: 60 }), 70_000);
    const tookMs = Date.now() - asked;
    expect(done).toMatchObject({ pending: null, lastError: null, observed: { state: 'shutoff', reason: 'shutdown' } });
    const text = await readFile(consoleLog, 'utf8');
    // The first presses fell on a deaf guest; one after it listened powered it off.
    expect(text.indexOf('listening to the power button')).toBeGreaterThan(-1);
    expect(text.indexOf('listening to the power button')).toBeLessThan(text.indexOf('power button pressed, powering off'));
    const types = (await readLog(s.nats.nats, `ev.domain.${v.id}`)).flatMap((c) => c.events).map((e) => e.type);
    expect(types.filter((t) => t === 'DomainStateObserved')).toEqual([]);
    console.log(JSON.stringify({ case: 'qemu deaf shutdown', deafS: 4, acpiResendMs: 500, shutdownTookMs: tookMs }));
  }, 300_000);

  it('a guest deaf past the shutdown deadline: the shutdown fails at its deadline, the domain stays running and is released; destroy then stops it', async () => {
    const guest = await buildTinyGuest();
    stack = await startQemuHost({ VIRTPLANE_ACPI_RESEND_MS: '500' });
    const s = stack;
    await s.client.define({ xml: tinyGuestXml(guest, { name: 'q-deafer', type, memoryMiB: 96, extraCmdline: 'vp.deaf=600' }), hostId: 'host-a' });
    const v = await s.client.outcome(await s.client.start('q-deafer', { timeoutSeconds: 120 }), 120_000);
    await waitForConsole(join(s.dataDir, 'hosts', 'host-a', 'qemu', v.id, 'console.log'), READY_MARKER, { timeoutMs: 120_000 });
    const failed = await s.client.outcome(await s.client.shutdown('q-deafer', { timeoutSeconds: 3 }), 30_000).catch((e: unknown) => e);
    const after = await until('q-deafer released', async () => {
      const x = await s.client.get('q-deafer');
      return x.pending === null && x;
    }, 30_000);
    expect(after.observed.state).toBe('running');
    expect(isVirtError(failed) && failed.code).toBe('timeout');
    expect(after.lastError).toMatchObject({ op: 'shutdown', code: 'timeout' });
    await sleep(2000);
    // Still running, and the resync agrees: nothing reported.
    expect((await s.client.get('q-deafer')).observed.state).toBe('running');
    expect(await observedEvents(s, v.id)).toEqual([]);
    const stopped = await s.client.outcome(await s.client.destroy('q-deafer', { timeoutSeconds: 60 }), 60_000);
    expect(stopped.observed).toMatchObject({ state: 'shutoff', reason: 'destroyed' });
  }, 300_000);
});
