import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KV } from '@nats-io/kv';
import { startTestNats, type TestNats } from '../test/fixtures/nats.ts';
import { decodeJson } from './nats.ts';
import { VersionedKvWriter } from './ordered-kv-writer.ts';

describe('VersionedKvWriter against a real server', () => {
  let t: TestNats;
  let kv: KV;
  beforeAll(async () => {
    t = await startTestNats();
    kv = await t.nats.kvm.create('versioned-test', { history: 1 });
  });
  afterAll(async () => t?.stop());

  const stored = async (key: string) => {
    const e = await kv.get(key);
    return e?.operation === 'PUT' ? (decodeJson(e.value) as { version: number; v: string }) : null;
  };

  it('with a linger, a value replaced meanwhile is never sent: one put for both', async () => {
    const w = new VersionedKvWriter<{ version: number; v: string }>(kv, undefined, 50);
    const lastSeq = async () => (await t.nats.jsm.streams.info('KV_versioned-test')).state.last_seq;
    const before = await lastSeq();
    const first = w.write('linger', { version: 1, v: 'pending' });
    await new Promise((r) => setTimeout(r, 10));
    const second = w.write('linger', { version: 2, v: 'done' });
    await Promise.all([first, second]);
    expect(await stored('linger')).toEqual({ version: 2, v: 'done' });
    expect((await lastSeq()) - before).toBe(1);
  });

  it('never lets a writer that knows less move a key backwards', async () => {
    const a = new VersionedKvWriter<{ version: number; v: string }>(kv);
    const b = new VersionedKvWriter<{ version: number; v: string }>(kv);
    await a.write('k', { version: 5, v: 'a5' });
    // b has never seen the key: its create fails, it reads version 5, and its version 3 is dropped.
    await b.write('k', { version: 3, v: 'b3' });
    expect(await stored('k')).toEqual({ version: 5, v: 'a5' });
    // b now knows revision and version of the key; a's knowledge is stale but a's newer write still lands.
    await b.write('k', { version: 7, v: 'b7' });
    await a.write('k', { version: 6, v: 'a6' });
    expect(await stored('k')).toEqual({ version: 7, v: 'b7' });
    await a.write('k', { version: 9, v: 'a9' });
    expect(await stored('k')).toEqual({ version: 9, v: 'a9' });
  });

  it('coalesces a burst of writes of one key and lands the newest', async () => {
    const w = new VersionedKvWriter<{ version: number; v: string }>(kv);
    const before = (await t.nats.jsm.streams.info('KV_versioned-test')).state.last_seq;
    const writes = Array.from({ length: 200 }, (_, i) => w.write('burst', { version: i + 1, v: `v${i + 1}` }));
    await Promise.all(writes);
    await w.flush();
    expect(await stored('burst')).toEqual({ version: 200, v: 'v200' });
    // Only the newest pending value of a key is sent: far fewer than 200 puts reached the server.
    const after = (await t.nats.jsm.streams.info('KV_versioned-test')).state.last_seq;
    expect(after - before).toBeLessThan(10);
  });

  it('starts a new drain for a write that arrives as the last one finishes', async () => {
    const w = new VersionedKvWriter<{ version: number; v: string }>(kv);
    for (let i = 1; i <= 50; i++) {
      await w.write('serial', { version: i, v: `s${i}` });
      void w.write('serial', { version: i + 1000, v: 'ahead' }).catch(() => undefined);
    }
    await w.flush();
    expect((await stored('serial'))!.version).toBe(1050);
  });
});
