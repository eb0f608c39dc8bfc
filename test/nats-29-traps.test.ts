import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { startTestNats, type TestNats } from './fixtures/nats.ts';

/**
 * nats-server 2.9.10 ignores or refuses features newer servers have. virtplane relies on none of
 * them; these tests pin the behaviour down so an upgrade, or a change that starts relying on one,
 * is noticed.
 */
describe('nats-server 2.9.10 traps', () => {
  let t: TestNats;
  const enc = new TextEncoder();
  beforeAll(async () => {
    t = await startTestNats();
    await t.nats.jsm.streams.add({ name: 'TRAPS', subjects: ['traps.>'], storage: StorageType.Memory, retention: RetentionPolicy.Limits });
  });
  afterAll(async () => t?.stop());

  it('is the server version the design assumes', () => {
    expect(t.nats.nc.info?.version).toBe('2.9.10');
  });

  it('keeps a message published with a per-message TTL', async () => {
    const ack = await t.nats.js.publish('traps.ttl', enc.encode('x'), { ttl: '1s' }).catch((e: Error) => e);
    if (ack instanceof Error) {
      // Refused outright is as good as ignored: either way no TTL applies.
      expect(ack.message).toMatch(/ttl|TTL|not supported|requires/);
      return;
    }
    await new Promise((r) => setTimeout(r, 1500));
    const m = await t.nats.jsm.streams.getMessage('TRAPS', { seq: ack.seq });
    expect(m?.seq).toBe(ack.seq);
  });

  it('checks the expected last sequence on the publish subject even when a wildcard subject is named', async () => {
    await t.nats.js.publish('traps.a.1', enc.encode('1'));
    // On 2.10+ this would check the last sequence of traps.a.>; 2.9 checks traps.a.2, which is empty.
    const ack = await t.nats.js.publish('traps.a.2', enc.encode('2'), { expect: { lastSubjectSequence: 0, lastSubjectSequenceSubject: 'traps.a.>' } });
    expect(ack.seq).toBeGreaterThan(0);
  });

  it('refuses consumers with several filter subjects in the client', async () => {
    await expect(
      t.nats.jsm.consumers.add('TRAPS', { durable_name: 'multi', ack_policy: AckPolicy.Explicit, filter_subjects: ['traps.a.>', 'traps.b.>'] }),
    ).rejects.toThrow(/filter_subjects|requires server/);
  });

  it('checks a message id before the expected sequence', async () => {
    await t.nats.js.publish('traps.d', enc.encode('1'), { msgID: 'same', expect: { lastSubjectSequence: 0 } });
    const dup = await t.nats.js.publish('traps.d', enc.encode('1'), { msgID: 'same', expect: { lastSubjectSequence: 0 } });
    expect(dup.duplicate).toBe(true);
  });

  it('honours the expected last sequence of the whole stream, which the lifecycle publisher relies on', async () => {
    await t.nats.jsm.streams.add({ name: 'TRAPSEQ', subjects: ['trapseq.>'], storage: StorageType.Memory });
    const first = await t.nats.js.publish('trapseq.a', enc.encode('1'), { expect: { lastSequence: 0 } });
    expect(first.seq).toBe(1);
    // Another subject, same stream: the check is on the stream's last sequence, not the subject's.
    await expect(t.nats.js.publish('trapseq.b', enc.encode('2'), { expect: { lastSequence: 0 } })).rejects.toThrow(/wrong last sequence/);
    const second = await t.nats.js.publish('trapseq.b', enc.encode('2'), { expect: { lastSequence: 1 } });
    expect(second.seq).toBe(2);
    // A duplicate id is answered as a duplicate (with the original's sequence) before the sequence is checked.
    await t.nats.js.publish('trapseq.c', enc.encode('3'), { msgID: 'lc-1', expect: { lastSequence: 2 } });
    const dup = await t.nats.js.publish('trapseq.c', enc.encode('3'), { msgID: 'lc-1', expect: { lastSequence: 2 } });
    expect(dup).toMatchObject({ duplicate: true, seq: 3 });
    expect((await t.nats.jsm.streams.info('TRAPSEQ')).state.messages).toBe(3);
  });

  it('delivers the last message per subject to an ordered consumer, as the views are loaded', async () => {
    const kv = await t.nats.kvm.create('traps-kv', { history: 1 });
    await kv.put('a', enc.encode('1'));
    await kv.put('a', enc.encode('2'));
    await kv.put('b', enc.encode('3'));
    await kv.delete('b');
    const { readBucket } = await import('../platform/kv-mirror.ts');
    const entries = await readBucket(t.nats, 'traps-kv');
    expect(entries.map((e) => [e.key, e.value ? new TextDecoder().decode(e.value) : null])).toEqual([
      ['a', '2'],
      ['b', null],
    ]);
  });
});
