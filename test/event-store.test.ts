import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ConcurrencyError, EventStore, type StoredEvent } from '../platform/event-store.ts';
import { startTestNats, type TestNats } from './fixtures/nats.ts';

const event = (type: string, data: unknown = {}): StoredEvent => ({
  type,
  data,
  id: randomUUID(),
  aggregateType: 'domain',
  aggregateId: 'a',
  time: new Date().toISOString(),
  actor: 'test',
  commandId: 'c',
  causationId: 'c',
  correlationId: 'c',
  traceContext: {},
  schemaVersion: 1,
});

describe('event store on nats-server 2.9', () => {
  let t: TestNats;
  let store: EventStore;
  beforeAll(async () => {
    t = await startTestNats();
    store = new EventStore(t.nats);
  });
  afterAll(async () => t?.stop());

  it('appends with expected version 0 only to an empty subject', async () => {
    const subject = `ev.domain.${randomUUID()}`;
    const first = await store.append(subject, 'cmd-00000001', [event('A')], 0);
    expect(first.duplicate).toBe(false);
    await expect(store.append(subject, 'cmd-00000002', [event('B')], 0)).rejects.toBeInstanceOf(ConcurrencyError);
    const second = await store.append(subject, 'cmd-00000003', [event('B'), event('C')], first.version);
    expect(second.version).toBeGreaterThan(first.version);
    const commits = await store.read(subject);
    expect(commits.map((c) => c.events.map((e) => e.type))).toEqual([['A'], ['B', 'C']]);
    expect(commits[1]!.events[0]!.version).toBe(second.version);
    expect((await store.read(subject, first.version)).length).toBe(1);
    expect((await store.last(subject))?.seq).toBe(second.version);
  });

  it('treats a repeated command id inside the window as the same append', async () => {
    const subject = `ev.domain.${randomUUID()}`;
    const a = await store.append(subject, 'cmd-dup-0001', [event('A')], 0);
    // Dedupe is checked before the expected sequence: the retry with a stale version is still a duplicate.
    const b = await store.append(subject, 'cmd-dup-0001', [event('A')], 0);
    expect(b).toEqual({ version: a.version, duplicate: true });
    expect((await store.read(subject)).length).toBe(1);
  });

  it('reads nothing from a subject with no messages', async () => {
    expect(await store.read(`ev.domain.${randomUUID()}`)).toEqual([]);
    expect(await store.last(`ev.domain.${randomUUID()}`)).toBeNull();
  });

  it('subscribes from a position and then follows new commits', async () => {
    const id = randomUUID();
    const subject = `ev.domain.${id}`;
    const a = await store.append(subject, `cmd-sub-${id}-1`, [event('A')], 0);
    const b = await store.append(subject, `cmd-sub-${id}-2`, [event('B')], a.version);
    const ac = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const c of store.subscribe(subject, b.version, ac.signal)) {
        seen.push(...c.events.map((e) => e.type));
        if (seen.length === 2) ac.abort();
      }
    })();
    await store.append(subject, `cmd-sub-${id}-3`, [event('C')], b.version);
    await reading;
    expect(seen).toEqual(['B', 'C']);
  });

  it('refuses deletes and purges of the log', async () => {
    await expect(t.nats.jsm.streams.purge('EVENTS')).rejects.toThrow();
    await expect(t.nats.jsm.streams.deleteMessage('EVENTS', 1)).rejects.toThrow();
  });
});
