import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Envelope } from '../../contracts/envelope.ts';
import { EventStore } from '../../platform/event-store.ts';
import { createLogger } from '../../platform/log.ts';
import { connectNats, type Nats } from '../../platform/nats.ts';
import { startNatsServer, type RunningNatsServer } from '../../platform/nats-server.ts';
import { provision } from '../../platform/provision.ts';
import { DeadlineKeeper } from './deadlines.ts';
import { FreshReads } from './fresh-reads.ts';
import { Repository, type AggregateKind } from './repository.ts';

/** A counter on the domain subjects: each commit bumps it, so a state's count says which commits it saw. */
interface Counter {
  id: string;
  version: number;
  count: number;
}
type Bump = { type: 'Bumped'; data: Record<string, never> };
const counterKind: AggregateKind<Counter, Bump> = {
  type: 'domain',
  initial: (id) => ({ id, version: 0, count: 0 }),
  evolve: (s, e: Envelope<Bump>) => ({ ...s, version: (e as unknown as { version: number }).version, count: s.count + 1 }),
};
const meta = (commandId: string) => ({ commandId, actor: 'test', correlationId: commandId, causationId: commandId, traceContext: {}, now: new Date() });
const bump = (repo: Repository<Counter, Bump>, id: string, n: number) => repo.execute(id, meta(`${id}-${n}-${Math.random()}`), () => [{ type: 'Bumped', data: {} }]);

let server: RunningNatsServer;
let nats: Nats[] = [];
const log = createLogger('fresh-reads-test', 'error');

beforeAll(async () => {
  server = await startNatsServer();
  const n = await connectNats(server.url, 'provision');
  await provision(n);
  await n.close();
});

afterAll(async () => {
  for (const n of nats) await n.close();
  await server.stop();
});

/** One command service replica's view of the log: its store, its keeper's fold, a repository vouched for by that fold. */
const replica = async (withFold: boolean) => {
  const n = await connectNats(server.url, 'replica');
  nats.push(n);
  const store = new EventStore(n);
  const repo = new Repository<Counter, Bump>(store, counterKind);
  const keeper = new DeadlineKeeper(n, 'ev.domain.>', async () => undefined, log);
  if (withFold) {
    // As in the service: with a follower (the host monitor) the keeper reads the log from its start.
    keeper.follow(() => undefined);
    await keeper.start();
    repo.vouchedBy(new FreshReads(store, 'ev.domain.>', keeper));
  }
  return { store, repo, keeper };
};

describe('loads vouched for by the fold of every commit', () => {
  it('see every commit recorded before them, by whichever replica, as a read of the log does', async () => {
    const a = await replica(true);
    const b = await replica(false);
    // A has the aggregate cached; B then moves it on, and A asks straight after: never the stale copy.
    let stale = 0;
    for (let i = 0; i < 150; i++) {
      const id = `race-${i % 10}`;
      await a.repo.load(id);
      const out = await bump(b.repo, id, i);
      const seen = await a.repo.load(id);
      if (seen.version !== out.version) stale++;
    }
    expect(stale).toBe(0);
    await a.keeper.stop();
  });

  it('share one look at the log between the questions asked together, and read no aggregate the cache holds', async () => {
    const a = await replica(true);
    const ids = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    for (const id of ids) await bump(a.repo, id, 0);
    const heads = vi.spyOn(a.store, 'lastSeqOn');
    const reads = vi.spyOn(a.store, 'read');
    const states = await Promise.all(ids.map((id) => a.repo.load(id)));
    expect(states.map((s) => s.count)).toEqual(ids.map(() => 1));
    // The first question starts a look; all the others arrive while it runs and share the next one.
    expect(heads.mock.calls.length).toBeLessThanOrEqual(2);
    expect(reads).not.toHaveBeenCalled();
    // An aggregate nobody recorded is known absent without a read.
    expect((await a.repo.load('never-recorded')).version).toBe(0);
    expect(reads).not.toHaveBeenCalled();
    await a.keeper.stop();
  });

  it('read the aggregate when the fold cannot get as far as the log in time', async () => {
    const a = await replica(true);
    const b = await replica(false);
    await bump(a.repo, 'stalled', 0);
    await a.keeper.stop();
    await bump(b.repo, 'stalled', 1);
    const reads = vi.spyOn(a.store, 'read');
    expect((await a.repo.load('stalled')).count).toBe(2);
    expect(reads).toHaveBeenCalledTimes(1);
  });
});
