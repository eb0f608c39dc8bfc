import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMS } from '../../contracts/subjects.ts';
import { createLogger } from '../../platform/log.ts';
import { startTestNats, type TestNats } from '../../test/fixtures/nats.ts';
import { publishedLifecycleIds } from '../../test/faults/log-fold.ts';
import { LifecyclePublisher } from './lifecycle-publisher.ts';
import type { LifecycleMessage } from './projection.ts';

/** The same derived sequence, as every replica derives it: commit c announces (c % 3) messages. */
const sequence = (from: number, to: number): Array<[number, LifecycleMessage[]]> =>
  Array.from({ length: to - from + 1 }, (_, i) => {
    const seq = from + i;
    return [seq, Array.from({ length: seq % 3 }, (_, k) => ({ subject: `lifecycle.h.d${seq}`, msgId: k === 0 ? `e${seq}` : `e${seq}:${k}`, body: { seq, k } }))];
  });

const expectedIds = (to: number) => sequence(1, to).flatMap(([, ms]) => ms.map((m) => m.msgId));

describe('LifecyclePublisher against a real server', () => {
  let t: TestNats;
  const log = createLogger('test');
  beforeAll(async () => {
    t = await startTestNats();
  });
  afterAll(async () => t?.stop());

  it('publishes each message once, in order, with three replicas racing and one joining late', { timeout: 60_000 }, async () => {
    const N = 600;
    const replicas = [0, 1, 2].map(() => new LifecyclePublisher(t.nats, log, () => 0));
    for (const r of replicas) r.start();
    const run = async (p: LifecyclePublisher, from: number) => {
      const waits: Array<Promise<void>> = [];
      for (const [seq, ms] of sequence(from, N)) {
        waits.push(p.enqueue(seq, ms));
        if (seq % 50 === 0) await new Promise((r) => setTimeout(r, Math.random() * 20));
      }
      await Promise.all(waits);
    };
    // The late one starts from a stored position in the middle, as a restarted replica does: a position
    // is stored only once the lifecycle messages of the commits before it are in the stream.
    const midway = (async () => {
      while ((await t.nats.jsm.streams.info(STREAMS.lifecycle)).state.messages < expectedIds(299).length) {
        await new Promise((r) => setTimeout(r, 5));
      }
      await run(replicas[2]!, 300);
    })();
    await Promise.all([run(replicas[0]!, 1), run(replicas[1]!, 1), midway]);
    for (const r of replicas) await r.stop();
    expect(await publishedLifecycleIds(t.nats)).toEqual(expectedIds(N));
  });

  it('a publisher resuming after everything was sent sends nothing again', { timeout: 20_000 }, async () => {
    const before = (await t.nats.jsm.streams.info(STREAMS.lifecycle)).state.last_seq;
    const p = new LifecyclePublisher(t.nats, log, () => 0);
    p.start();
    await Promise.all(sequence(1, 600).map(([seq, ms]) => p.enqueue(seq, ms)));
    await p.stop();
    expect((await t.nats.jsm.streams.info(STREAMS.lifecycle)).state.last_seq).toBe(before);
  });
});
