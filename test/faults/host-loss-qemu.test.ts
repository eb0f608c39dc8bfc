import { readdir, readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { HA_ELEMENT } from '../../contracts/domain/ha.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import { qemuAvailable } from '../../drivers/qemu/index.ts';
import { call } from '../../platform/rpc.ts';
import { buildTinyGuest, tinyGuestXml, type TinyGuest } from '../fixtures/guest/build.ts';
import { domainEventCounts, hostEvents, hostOf, sleep, TIMING_ENV, TIMINGS, until } from '../fixtures/hosts.ts';
import { startStack, type Stack } from '../fixtures/stack.ts';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy.ts';

const availability = await qemuAvailable();

/** The command lines of the qemu processes now, read from /proc (quicker than ps, so samples come often). */
const qemuCmdlines = async (): Promise<string[]> => {
  const out: string[] = [];
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('qemu-system')) out.push(cmd.replaceAll('\0', ' '));
  }
  return out;
};

const qemuRunning = async (uuid: string) => (await qemuCmdlines()).filter((l) => l.includes(uuid)).length;

/**
 * The qemu processes running each guest, sampled every 50 ms from the process table (each qemu has
 * its domain's uuid in its argv): the most copies of one guest that ever ran at once.
 */
const qemuSampler = (uuids: string[]) => {
  let stop = false;
  let max = 0;
  let samples = 0;
  const firstSeenTwice: string[] = [];
  const done = (async () => {
    while (!stop) {
      const lines = await qemuCmdlines();
      for (const u of uuids) {
        const n = lines.filter((l) => l.includes(u)).length;
        max = Math.max(max, n);
        if (n > 1) firstSeenTwice.push(u);
      }
      samples++;
      await sleep(50);
    }
  })();
  return {
    async stop() {
      stop = true;
      await done;
      return { max, samples, firstSeenTwice };
    },
  };
};

/**
 * Stops the sampler and holds the run to its bar: no guest ever seen twice, each HA guest running
 * once now, and failed over exactly once by the log.
 */
const ranOnceEach = async (s: Stack, watch: ReturnType<typeof qemuSampler>, ha: string[]) => {
  const seen = await watch.stop();
  expect(seen.firstSeenTwice).toEqual([]);
  expect(seen.max).toBe(1);
  for (const id of ha) expect(await qemuRunning(id)).toBe(1);
  const failovers = await domainEventCounts(s, 'DomainFailedOver');
  for (const id of ha) expect(failovers.get(id)).toBe(1);
  return seen;
};

/** Two qemu hosts on this machine, host-a reaching NATS through `agentAUrl` when given. */
const startQemuHosts = async (env: Record<string, string>, agentAUrl?: (s: Stack) => Promise<string>): Promise<Stack> => {
  const s = await startStack({ services: [], env: { ...TIMING_ENV, VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000', ...env } });
  await s.start('command');
  await s.start('projector');
  const url = agentAUrl ? await agentAUrl(s) : undefined;
  await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-a', ...(url ? { VIRTPLANE_NATS_URL: url } : {}) }, 'agent-a');
  await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-b' }, 'agent-b');
  return s;
};

describe.skipIf(!availability.ok)('losing a host with real qemu guests', () => {
  let stack: Stack | undefined;
  let proxy: TcpProxy | undefined;
  let guest: TinyGuest;
  const type = availability.kvm ? 'kvm' : 'qemu';
  afterEach(async () => {
    for (const v of (await stack?.client.list({ all: false }).catch(() => [])) ?? []) {
      if (!v.hostLost) await stack!.client.destroy(v.id).then((a) => stack!.client.outcome(a, 60_000)).catch(() => undefined);
    }
    await stack?.stop();
    stack = undefined;
    await proxy?.close();
    proxy = undefined;
  });

  const defineGuest = async (s: Stack, name: string, ha: boolean) => {
    const xml = tinyGuestXml(guest, { name, type, memoryMiB: 96 }).replace('</domain>', ha ? `  <metadata>${HA_ELEMENT}</metadata>\n</domain>` : '</domain>');
    const d = await s.client.define({ xml, hostId: 'host-a' });
    await s.client.outcome(await s.client.start(name, { timeoutSeconds: 120 }), 120_000);
    return d.domainId;
  };

  it('SIGKILL of an agent: its fence guard kills its HA qemu guests, the host is lost after the TTL, each HA guest runs on host-b once, never two copies', async () => {
    guest = await buildTinyGuest();
    stack = await startQemuHosts({});
    const s = stack;
    const ha = [await defineGuest(s, 'q-ha-0', true), await defineGuest(s, 'q-ha-1', true)];
    const plain = await defineGuest(s, 'q-plain', false);
    for (const id of [...ha, plain]) expect(await qemuRunning(id)).toBe(1);
    const watch = qemuSampler([...ha, plain]);
    await s.kill('agent-a', 'SIGKILL');
    const killedAt = Date.now();
    await until('host-a lost', async () => (await hostOf(s, 'host-a'))?.lost, 30_000);
    const lost = (await hostEvents(s, 'host-a')).find((e) => e.type === 'HostLost')!;
    const restartedAt: number[] = [];
    for (const id of ha) {
      await until(`${id} running on host-b`, async () => {
        const v = await s.client.get(id);
        return v.hostId === 'host-b' && v.observed.state === 'running' && v.pending === null && v;
      }, 120_000);
      restartedAt.push(Date.now() - killedAt);
    }
    // The plain guest is restarted nowhere, so it cannot run twice: the guard leaves it running (an
    // agent stopped on purpose finds it again), and the control plane honestly calls it unknown.
    expect(await qemuRunning(plain)).toBe(1);
    expect((await s.client.get(plain)).hostLost).toBe(true);
    await sleep(1000);
    const seen = await ranOnceEach(s, watch, ha);
    console.log(JSON.stringify({ case: 'qemu sigkill', lostAfterKillMs: Date.parse(lost.time) - killedAt, restartedAfterKillMs: restartedAt, samples: seen.samples, maxCopies: seen.max }));
    // host-a's agent back: it reports the plain guest it still runs (known again), and the HA guests
    // the guard killed are host-b's now.
    await s.start('host-agent', { VIRTPLANE_HOST_ID: 'host-a' }, 'agent-a');
    await until('the plain guest known again', async () => {
      const v = await s.client.get(plain);
      return !v.hostLost && v.observed.state === 'running' && v;
    }, 60_000);
    for (const id of ha) expect(await qemuRunning(id)).toBe(1);
  }, 400_000);

  it('an agent cut off from NATS fences its qemu guests before they restart on host-b; back again, its late word is refused and nothing ever runs twice', async () => {
    guest = await buildTinyGuest();
    stack = await startQemuHosts({ VIRTPLANE_FENCE_POLICY: 'destroy' }, async (s) => {
      proxy = await startTcpProxy(s.nats.server.port);
      return proxy.url;
    });
    const s = stack;
    const ha = [await defineGuest(s, 'c-ha-0', true), await defineGuest(s, 'c-ha-1', true)];
    const plain = await defineGuest(s, 'c-plain', false);
    const watch = qemuSampler([...ha, plain]);
    await proxy!.cut();
    const cutAt = Date.now();
    const fencedAt = new Map<string, number>();
    const runningOnB = new Map<string, number>();
    await until('every HA guest restarted on host-b', async () => {
      for (const id of [...ha, plain]) if (!fencedAt.has(id) && (await qemuRunning(id)) === 0) fencedAt.set(id, Date.now() - cutAt);
      for (const id of ha) {
        if (runningOnB.has(id)) continue;
        const v = await s.client.get(id);
        if (v.hostId === 'host-b' && v.observed.state === 'running') runningOnB.set(id, Date.now() - cutAt);
      }
      return runningOnB.size === ha.length;
    }, 120_000);
    for (const id of ha) expect(fencedAt.get(id)!).toBeLessThan(runningOnB.get(id)!);
    expect((await s.client.get(plain)).hostLost).toBe(true);

    await proxy!.restore();
    await until('host-a back', async () => {
      const h = await hostOf(s, 'host-a');
      return h && !h.lost && h.alive;
    }, 60_000);
    const back = await until('c-plain known again', async () => {
      const v = await s.client.get(plain);
      return !v.hostLost && v;
    }, 60_000);
    expect(back.observed.state).toBe('shutoff');
    const late = await call(s.nats.nats.nc, subjects.agent('host-a', 'report'), {
      kind: 'observed',
      reportId: 'late-qemu-report-from-host-a',
      domainId: ha[0],
      observed: { state: 'running', reason: 'booted' },
    }).catch((e: unknown) => e);
    expect(isVirtError(late) && late.code).toBe('unauthorized');
    await sleep(2000);
    const seen = await ranOnceEach(s, watch, ha);
    console.log(JSON.stringify({ case: 'qemu cut off', fencedAfterCutMs: Object.fromEntries(fencedAt), restartedAfterCutMs: Object.fromEntries(runningOnB), samples: seen.samples, maxCopies: seen.max }));
  }, 400_000);
});
