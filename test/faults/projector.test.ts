import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandAccepted } from '../../client/index.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { BUCKETS, subjects } from '../../contracts/subjects.ts';
import type { DomainView } from '../../contracts/views.ts';
import { startNatsServer, type RunningNatsServer } from '../../platform/nats-server.ts';
import { decodeJson } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';
import { POSITION_KEY } from '../../services/projector/projector.ts';
import { toDomainView } from '../../contracts/view-of.ts';
import type { DomainAggregate } from '../../contracts/domain/decider.ts';
import { startStack, type Stack } from '../fixtures/stack.ts';
import { divergingViews, foldLog, lifecycleFigures, publishedLifecycleIds, storedViews } from './log-fold.ts';

/**
 * The read side under faults, against real processes: projectors SIGKILLed at random points of a
 * load, a nats-server restart, two replicas at once. After each, the views in KV, every replica's
 * answers and the lifecycle feed must equal what folding the log gives: nothing lost, nothing doubled.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rand = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo));

let stack: Stack | undefined;
let restarted: RunningNatsServer | undefined;
afterEach(async () => {
  await stack?.stop();
  if (restarted) {
    await restarted.stop();
    await rm(restarted.storeDir, { recursive: true, force: true });
  }
  stack = undefined;
  restarted = undefined;
});

/** A command's outcome, waiting through projector restarts (no one answering is not a failure). */
const outcome = async (s: Stack, a: CommandAccepted): Promise<DomainView | null> => {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      return await s.client.outcome(a, 30_000);
    } catch (e) {
      if (isVirtError(e) && (e.code === 'timeout' || /no service answers/.test(e.message))) {
        await sleep(200);
        continue;
      }
      return null;
    }
  }
  throw new Error(`no outcome for ${a.name} within 120 s`);
};

interface Load {
  accepted: number;
  refused: number;
}

/** Domains defined, started, destroyed, redefined and (every other one) undefined, by concurrent workers. */
const runLoad = async (s: Stack, prefix: string, workers: number, cycles: number): Promise<Load> => {
  const load: Load = { accepted: 0, refused: 0 };
  const send = async (f: (o: { commandId: string }) => Promise<CommandAccepted>): Promise<CommandAccepted | null> => {
    // One command id across attempts: a retry after a lost reply takes effect once.
    const o = { commandId: randomUUID() };
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        const a = await f(o);
        load.accepted++;
        return a;
      } catch (e) {
        // The command service is never killed here, but a nats-server restart makes requests fail for a moment.
        if (!isVirtError(e) || e.code === 'timeout' || /no service answers/.test(e.message)) {
          await sleep(200);
          continue;
        }
        load.refused++;
        if (process.env.VIRTPLANE_TEST_LOGS) console.log('refused', e);
        return null;
      }
    }
    return null;
  };
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let cycle = 0; cycle < cycles; cycle++) {
        const name = `${prefix}-${w}-${cycle}`;
        const c = s.client;
        const defined = await send((o) => c.define({ definition: { name, memoryKiB: 65536, vcpus: 1 } }, o));
        if (!defined) continue;
        const started = await send((o) => c.start(name, { ...o, timeoutSeconds: 120 }));
        if (started) await outcome(s, started);
        const destroyed = await send((o) => c.destroy(name, { ...o, timeoutSeconds: 120 }));
        if (destroyed) await outcome(s, destroyed);
        // A redefinition right after the last one: the case a redelivered commit used to lose.
        await send((o) => c.define({ definition: { name, uuid: defined.domainId, memoryKiB: 131072, vcpus: 2 } }, o));
        if (w % 2 === 0) await send((o) => c.undefine(name, o));
      }
    }),
  );
  return load;
};

/** SIGKILLs a projector at random points until `done`, starting it again each time; returns the rounds. */
const killLoop = async (s: Stack, labels: string[], done: () => boolean, midway?: () => Promise<void>): Promise<number> => {
  let rounds = 0;
  while (!done()) {
    await sleep(rand(50, 1000));
    if (done()) break;
    const label = labels[rounds % labels.length]!;
    await s.kill(label, 'SIGKILL');
    rounds++;
    await sleep(rand(0, 400));
    if (midway && rounds === 3) await midway();
    await s.start('projector', {}, label);
  }
  return rounds;
};

/** Waits until the log stops growing (the host agent stopped) and the stored position has reached its end. */
const quiesce = async (s: Stack): Promise<number> => {
  await s.kill('host-agent', 'SIGTERM');
  const n = s.nats.nats;
  let last = -1;
  for (;;) {
    const seq = (await n.jsm.streams.info('EVENTS')).state.last_seq;
    if (seq === last) break;
    last = seq;
    await sleep(700);
  }
  const kv = await n.kvm.open(BUCKETS.projectorPosition);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const e = await kv.get(POSITION_KEY);
    const at = e?.operation === 'PUT' ? (decodeJson(e.value) as { version: number }).version : 0;
    if (at >= last) return last;
    if (Date.now() > deadline) throw new Error(`stored position ${at} did not reach ${last}`);
    await sleep(200);
  }
};

const comparable = (v: DomainView) => {
  const { updatedAt: _u, ...rest } = v;
  return JSON.parse(JSON.stringify(rest)) as unknown;
};

/** Every replica's in-memory domain list (queue-group answers, collected until each replica spoke). */
const replicaLists = async (s: Stack, replicas: number, minSeq: number): Promise<Map<string, DomainView[]>> => {
  const out = new Map<string, DomainView[]>();
  for (let i = 0; i < 200 && out.size < replicas; i++) {
    const all: DomainView[] = [];
    let cursor: string | undefined;
    let replica = '';
    do {
      const r = await call<{ domains: DomainView[]; next?: string; replica: string }>(
        s.nats.nats.nc,
        subjects.query('domain', 'list'),
        { all: true, minSeq, waitMs: 20_000, pageSize: 10_000, ...(cursor ? { cursor } : {}) },
        30_000,
      );
      replica = r.replica;
      all.push(...r.domains);
      cursor = r.next;
    } while (cursor);
    out.set(replica, all);
  }
  return out;
};

/** The figures of one run, printed for the reliability record, and the assertions on them. */
const check = async (s: Stack, label: string, rounds: number, load: Load, replicas: number) => {
  const last = await quiesce(s);
  const folded = await foldLog(s.nats.nats);
  expect(folded.lastSeq).toBe(last);
  const diverging = divergingViews(folded.views, await storedViews(s.nats.nats));
  const figures = lifecycleFigures(folded.lifecycleIds, await publishedLifecycleIds(s.nats.nats));
  const expectedDomains = [...(folded.views.get(BUCKETS.domains)!.values() as Iterable<DomainAggregate>)]
    .filter((d) => d.exists)
    .map((d) => comparable(toDomainView(d, '')))
    .sort((a, b) => (a as DomainView).id.localeCompare((b as DomainView).id));
  const lists = await replicaLists(s, replicas, last);
  let divergingReplicas = 0;
  for (const list of lists.values()) {
    const got = list.map(comparable).sort((a, b) => (a as DomainView).id.localeCompare((b as DomainView).id));
    if (JSON.stringify(got) !== JSON.stringify(expectedDomains)) divergingReplicas++;
  }
  console.log(
    `[projector faults] ${label}: rounds=${rounds} accepted=${load.accepted} refused=${load.refused} commits=${last} ` +
      `lifecycle=${folded.lifecycleIds.length} lost=${figures.lost.length} doubled=${figures.doubled.length} ` +
      `outOfOrder=${figures.outOfOrder} divergingViews=${diverging.length} replicasAnswering=${lists.size} divergingReplicas=${divergingReplicas}`,
  );
  expect(diverging).toEqual([]);
  expect(figures.lost).toEqual([]);
  expect(figures.doubled).toEqual([]);
  expect(figures.outOfOrder).toBe(false);
  expect(lists.size).toBe(replicas);
  expect(divergingReplicas).toBe(0);
  return folded;
};

describe('projector faults', () => {
  it('never loses a redefinition to a crash: the view and dumpxml say what the log says', { timeout: 300_000 }, async () => {
    stack = await startStack();
    const s = stack;
    const c = s.client;
    const N = 40;
    const second: CommandAccepted[] = [];
    const work = (async () => {
      for (let i = 0; i < N; i++) {
        const first = await c.define({ definition: { name: `redef-${i}`, memoryKiB: 65536, vcpus: 1 } });
        second.push(await c.define({ definition: { name: `redef-${i}`, uuid: first.domainId, memoryKiB: 131072, vcpus: 2 } }));
        await sleep(rand(0, 150));
      }
    })();
    let rounds = 0;
    let finished = false;
    void work.finally(() => (finished = true));
    while (!finished) {
      await sleep(rand(20, 300));
      await s.kill('projector', 'SIGKILL');
      rounds++;
      await s.start('projector');
    }
    await work;
    for (const a of second) {
      const v = await c.get(a.domainId, { minVersion: a.version, waitMs: 20_000 });
      expect([v.definition.memoryKiB, v.definition.vcpus], v.name).toEqual([131072, 2]);
    }
    await check(s, 'redefinitions', rounds, { accepted: 2 * N, refused: 0 }, 1);
  });

  it('converges to a rebuild after SIGKILLs at random points of a load and a nats-server restart', { timeout: 400_000 }, async () => {
    stack = await startStack();
    const s = stack;
    let done = false;
    const loading = runLoad(s, 'crash', 6, 6).finally(() => (done = true));
    const rounds = await killLoop(s, ['projector'], () => done, async () => {
      // Mid-load, the server itself goes down and comes back on the same store and port.
      const old = s.nats.server;
      old.process.kill('SIGTERM');
      await new Promise((r) => old.process.once('exit', r));
      restarted = await startNatsServer({ storeDir: old.storeDir, port: old.port });
    });
    const load = await loading;
    expect(load.accepted).toBeGreaterThan(40);
    await check(s, 'single replica, SIGKILL loop and a nats-server restart', rounds, load, 1);
  });

  it('two replicas answer and write at once, each killed in turn, and agree with the rebuild', { timeout: 400_000 }, async () => {
    stack = await startStack({ services: ['command', 'projector', 'host-agent'] });
    const s = stack;
    await s.start('projector', {}, 'projector-2');
    let done = false;
    const loading = runLoad(s, 'pair', 6, 6).finally(() => (done = true));
    const rounds = await killLoop(s, ['projector', 'projector-2'], () => done);
    const load = await loading;
    expect(load.accepted).toBeGreaterThan(40);
    const folded = await check(s, 'two replicas, SIGKILL loop', rounds, load, 2);

    // A rebuild of the same log, from scratch, gives the same stored views and sends no lifecycle event again.
    const before = await publishedLifecycleIds(s.nats.nats);
    await s.kill('projector', 'SIGTERM');
    await s.kill('projector-2', 'SIGTERM');
    await s.start('projector', { VIRTPLANE_REBUILD: 'true' });
    await s.client.list({ all: true, minSeq: folded.lastSeq, waitMs: 20_000 });
    await quiesceRebuilt(s, folded.lastSeq);
    expect(divergingViews(folded.views, await storedViews(s.nats.nats))).toEqual([]);
    expect(await publishedLifecycleIds(s.nats.nats)).toEqual(before);
  });
});

describe('waiting for an outcome across a projector restart', () => {
  it('says "running", never "domain was removed", for a domain defined while no projector ran', { timeout: 120_000 }, async () => {
    stack = await startStack();
    const s = stack;
    await s.kill('projector', 'SIGKILL');
    await s.client.define({ definition: { name: 'unseen', memoryKiB: 65536, vcpus: 1 } });
    const started = await s.client.start('unseen', { timeoutSeconds: 60 });
    // The wait starts while nothing answers queries, and goes on through the projector's start.
    const waiting = s.client.outcome(started, 90_000);
    await sleep(500);
    await s.start('projector');
    const v = await waiting;
    expect(v.observed.state).toBe('running');
    // Views short of the asked-for version say so; only views at it may say "no such domain".
    const ahead = (await s.nats.nats.jsm.streams.info('EVENTS')).state.last_seq + 1000;
    const err = await call(s.nats.nats.nc, subjects.query('domain', 'get'), { domain: 'not-yet', minVersion: ahead, waitMs: 200 }).catch((e: unknown) => e);
    expect(isVirtError(err) && err.code).toBe('timeout');
    const gone = await call(s.nats.nats.nc, subjects.query('domain', 'get'), { domain: 'not-yet', minVersion: v.version, waitMs: 200 }).catch((e: unknown) => e);
    expect(isVirtError(gone) && gone.code).toBe('no-domain');
  });
});

const quiesceRebuilt = async (s: Stack, last: number) => {
  const kv = await s.nats.nats.kvm.open(BUCKETS.projectorPosition);
  for (let i = 0; i < 300; i++) {
    const e = await kv.get(POSITION_KEY);
    if (e?.operation === 'PUT' && (decodeJson(e.value) as { version: number }).version >= last) return;
    await sleep(200);
  }
  throw new Error('the rebuild did not store its position');
};
