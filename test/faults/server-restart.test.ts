import { afterEach, describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { LIVENESS_WINDOW_MS, type HostLiveness } from '../../contracts/host/liveness.ts';
import { BUCKETS, STREAMS } from '../../contracts/subjects.ts';
import { agentConsumerName } from '../../services/host-agent/agent.ts';
import { connectNats, type Nats } from '../../platform/nats.ts';
import { startStack, testDriverState, type Stack } from '../fixtures/stack.ts';
import { commitsPerCommand, readLog } from './log-audit.ts';

/**
 * The nats-server goes away mid-load and comes back with its store; no service is restarted by hand.
 * Every command a client saw accepted is in the log once, and placement works again by itself.
 */
const DOMAINS = Number(process.env.VIRTPLANE_FAULT_DOMAINS ?? 1000); // each one define and one start
const CLIENTS = 4;
const GIVE_UP_MS = 120_000;

interface Tally {
  accepted: Map<string, number>;
  refusals: Map<string, number>;
  /** When each command was accepted, for the time placement took to come back. */
  acceptedAt: Array<{ verb: string; at: number }>;
}

/** Sends a command until it is accepted, under one command id, as a careful client retries. */
const send = async (t: Tally, verb: string, attempt: (commandId: string) => Promise<unknown>, commandId: string): Promise<void> => {
  const end = Date.now() + GIVE_UP_MS;
  for (let i = 0; ; i++) {
    try {
      await attempt(commandId);
      t.accepted.set(commandId, (t.accepted.get(commandId) ?? 0) + 1);
      t.acceptedAt.push({ verb, at: Date.now() });
      return;
    } catch (e) {
      const code = isVirtError(e) ? e.code : 'transport';
      t.refusals.set(`${verb}:${code}`, (t.refusals.get(`${verb}:${code}`) ?? 0) + 1);
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(i, 5))));
    }
  }
};

const runLoad = async (stack: Stack, prefix: string, restartAfter: number, restart: () => Promise<number>) => {
  const t: Tally = { accepted: new Map(), refusals: new Map(), acceptedAt: [] };
  const conns: Nats[] = [];
  for (let i = 0; i < CLIENTS; i++) conns.push(await connectNats(stack.nats.url, `load-${i}`));
  const clients = conns.map((n) => VirtplaneClient.over(n, { actor: 'load', requestTimeoutMs: 5000 }));
  let next = 0;
  let upAt = 0;
  let restarted: Promise<void> | null = null;
  const worker = async (c: VirtplaneClient) => {
    for (let i = next++; i < DOMAINS; i = next++) {
      if (i === restartAfter) restarted = restart().then((at) => void (upAt = at));
      const name = `${prefix}-${i}`;
      await send(t, 'define', (commandId) => c.define({ definition: { name, memoryKiB: 65536, vcpus: 1 } }, { commandId }), `${prefix}-def-${i}`);
      await send(t, 'start', (commandId) => c.start(name, { commandId, timeoutSeconds: 300 }), `${prefix}-start-${i}`);
    }
  };
  await Promise.all(clients.map(worker));
  await restarted;
  for (const n of conns) await n.close();
  const placedAgain = t.acceptedAt.filter((a) => a.verb === 'define' && a.at >= upAt).map((a) => a.at);
  return { ...t, upAt, placementAfterMs: placedAgain.length ? Math.min(...placedAgain) - upAt : Number.NaN };
};

const audit = async (stack: Stack, prefix: string, accepted: Map<string, number>) => {
  const perCommand = commitsPerCommand(await readLog(stack.nats.nats, 'ev.domain.>'));
  const ids = [...accepted.keys()];
  return {
    lost: ids.filter((id) => (perCommand.get(id) ?? 0) === 0),
    doubled: ids.filter((id) => (perCommand.get(id) ?? 0) > 1),
    prefix,
  };
};

const waitAllRunning = async (stack: Stack, prefix: string): Promise<number> => {
  const end = Date.now() + GIVE_UP_MS;
  for (;;) {
    const guests = (await testDriverState(stack)).filter((g) => g.name.startsWith(`${prefix}-`));
    const running = guests.filter((g) => g.state === 'running').length;
    if (running === DOMAINS || Date.now() > end) return running;
    await new Promise((r) => setTimeout(r, 1000));
  }
};

describe('a nats-server restart under load', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    // The crash runs two command-service replicas, which share the dispatch and keep deadlines each.
    const replicas = signal === 'SIGKILL' ? 2 : 1;
    it(`${signal}, ${replicas} command service(s): every accepted command is in the log once, placement comes back, every domain runs once`, async () => {
      stack = await startStack({ services: [] });
      const s = stack;
      for (let i = 1; i <= replicas; i++) await s.start('command', {}, `command-${i}`);
      await s.start('projector');
      await s.start('host-agent');
      const prefix = `rs${signal === 'SIGKILL' ? 'k' : 't'}`;
      const startedAt = Date.now();
      const load = await runLoad(s, prefix, Math.floor(DOMAINS * 0.4), async () => {
        await s.nats.restart(signal, 1000);
        return Date.now();
      });
      const audited = await audit(s, prefix, load.accepted);
      const running = await waitAllRunning(s, prefix);
      const guests = (await testDriverState(s)).filter((g) => g.name.startsWith(`${prefix}-`));
      const bootedTwice = guests.filter((g) => g.boots > 1).map((g) => g.name);
      const liveness = await s.nats.nats.jsm.streams.info(`KV_${BUCKETS.hostLiveness}`);
      console.log(
        JSON.stringify({
          signal,
          replicas,
          domains: DOMAINS,
          commands: DOMAINS * 2,
          accepted: load.accepted.size,
          lost: audited.lost.length,
          doubled: audited.doubled.length,
          refusedAttempts: Object.fromEntries(load.refusals),
          placementAfterRestartMs: load.placementAfterMs,
          running,
          bootedTwice: bootedTwice.length,
          seconds: Math.round((Date.now() - startedAt) / 1000),
        }),
      );
      expect(liveness.config.storage).toBe('file');
      expect(load.accepted.size).toBe(DOMAINS * 2);
      expect(audited.lost).toEqual([]);
      expect(audited.doubled).toEqual([]);
      // Liveness, not speed: placement came back by itself, well inside the retry budget.
      expect(load.placementAfterMs).toBeLessThan(60_000);
      expect(running).toBe(DOMAINS);
      expect(bootedTwice).toEqual([]);

      // Past the liveness window the host is live only through leases renewed after the restart.
      await sleep(Math.max(0, load.upAt + LIVENESS_WINDOW_MS + 2000 - Date.now()));
      const lease = await leaseOf(s);
      expect(Date.parse(lease.at)).toBeGreaterThan(load.upAt);
      const after = await s.client.define({ definition: { name: `${prefix}-after`, memoryKiB: 65536, vcpus: 1 } });
      expect(after.domainId).toBeTruthy();
    }, 600_000);
  }

  const placeAgain = async (s: Stack, name: string): Promise<number> => {
    const from = Date.now();
    const t: Tally = { accepted: new Map(), refusals: new Map(), acceptedAt: [] };
    await send(t, 'define', (commandId) => s.client.define({ definition: { name, memoryKiB: 65536, vcpus: 1 } }, { commandId }), `${name}-def`);
    await send(t, 'start', (commandId) => s.client.start(name, { commandId, timeoutSeconds: 60 }), `${name}-start`);
    const v = await s.client.get(name);
    expect(v.pending?.op ?? 'none').toMatch(/start|none/);
    const end = Date.now() + GIVE_UP_MS;
    while ((await s.client.get(name)).observed.state !== 'running' && Date.now() < end) await sleep(200);
    expect((await s.client.get(name)).observed.state).toBe('running');
    return Date.now() - from;
  };

  it('a lease bucket removed and a task consumer lost: the agent registers again and takes tasks again by itself', async () => {
    stack = await startStack();
    const s = stack;
    await placeAgain(s, 'lost-0');
    const before = await leaseOf(s);
    // The server loses the leases and the host's consumer (an operator's mistake, a store wiped).
    await s.nats.nats.jsm.streams.delete(`KV_${BUCKETS.hostLiveness}`);
    // nats-server 2.9 may answer the delete with an error about its own directory, the consumer gone all the same.
    await s.nats.nats.jsm.consumers.delete(STREAMS.tasks, agentConsumerName(s.hostId)).catch((e) => {
      if (!String(e).includes('directory not empty')) throw e;
    });
    // Past the liveness window, so placement can only work on a lease granted anew.
    await sleep(LIVENESS_WINDOW_MS + 1000);
    const ms = await placeAgain(s, 'lost-1');
    const after = await leaseOf(s);
    expect(after.instanceId).toBe(before.instanceId);
    expect(Date.parse(after.at)).toBeGreaterThan(Date.parse(before.at));
    console.log(JSON.stringify({ case: 'lease bucket and consumer removed', placedAndRanAfterMs: ms }));

    // A purge (entries gone, revisions go on) is noticed the same way.
    await s.nats.nats.jsm.streams.purge(`KV_${BUCKETS.hostLiveness}`);
    const end = Date.now() + GIVE_UP_MS;
    let back = await leaseOf(s).catch(() => null);
    while (!back && Date.now() < end) {
      await sleep(500);
      back = await leaseOf(s).catch(() => null);
    }
    expect(back?.hostId).toBe(s.hostId);
    await placeAgain(s, 'lost-2');
  }, 300_000);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const leaseOf = async (s: Stack): Promise<HostLiveness> => {
  const kv = await s.nats.nats.kvm.open(BUCKETS.hostLiveness);
  const e = await kv.get(s.hostId);
  if (!e || e.operation !== 'PUT') throw new Error('no lease');
  return e.json<HostLiveness>();
};
