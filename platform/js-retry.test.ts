import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVirtError } from '../contracts/errors.ts';
import { startTestNats, type TestNats } from '../test/fixtures/nats.ts';
import { isRetryable, isTransientJsError, withJsRetry } from './js-retry.ts';
import { encodeJson } from './nats.ts';

describe('waiting out JetStream unavailability', () => {
  let t: TestNats;
  beforeAll(async () => {
    t = await startTestNats();
  });
  afterAll(async () => t?.stop());

  it('tells no one answering from a refusal', async () => {
    // No stream holds this subject: like a stream whose leader is being elected, nobody answers.
    const noLeader = await t.nats.js.publish('probe.nobody', encodeJson({})).catch((e) => e);
    expect(isTransientJsError(noLeader)).toBe(true);
    await t.nats.jsm.streams.add({ name: 'PROBE_REFUSE', subjects: ['probe.refuse'] });
    await t.nats.js.publish('probe.refuse', encodeJson({}));
    const wrongSeq = await t.nats.js.publish('probe.refuse', encodeJson({}), { expect: { lastSubjectSequence: 0 } }).catch((e) => e);
    expect(isTransientJsError(wrongSeq)).toBe(false);
    const missing = await t.nats.jsm.streams.info('NO_SUCH_STREAM').catch((e) => e);
    expect(isTransientJsError(missing)).toBe(false);
    expect(isTransientJsError(new Error('jetstream is not enabled'))).toBe(false);
  });

  it('waits until the stream can take the write', async () => {
    setTimeout(() => void t.nats.jsm.streams.add({ name: 'PROBE_LATE', subjects: ['probe.late'] }), 400);
    const ack = await withJsRetry('late write', () => t.nats.js.publish('probe.late', encodeJson({}), { msgID: 'late-1' }), { maxWaitMs: 10_000 });
    expect(ack.seq).toBe(1);
  });

  it('gives up after its bounded wait with a retryable timeout, and at once on a real error', async () => {
    const e = await withJsRetry('lost write', () => t.nats.js.publish('probe.never', encodeJson({})), { maxWaitMs: 300 }).catch((x) => x);
    expect(isVirtError(e) && e.code === 'timeout' && isRetryable(e.toBody())).toBe(true);
    let attempts = 0;
    const real = await withJsRetry('refused', () => {
      attempts++;
      return t.nats.jsm.streams.info('NO_SUCH_STREAM');
    }).catch((x) => x);
    expect(isTransientJsError(real)).toBe(false);
    expect(attempts).toBe(1);
  });
});
