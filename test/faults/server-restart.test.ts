import { afterEach, describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { BUCKETS } from '../../contracts/subjects.ts';
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
    it(`${signal}: every accepted command is in the log once, placement comes back, every domain runs once`, async () => {
      stack = await startStack();
      const s = stack;
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
    }, 600_000);
  }
});
