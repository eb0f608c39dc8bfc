import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNats, type TestNats } from '../test/fixtures/nats.ts';
import { KvMirror } from './kv-mirror.ts';
import { encodeJson } from './nats.ts';

const until = async (what: string, ok: () => boolean, ms = 20_000) => {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('KvMirror', () => {
  let t: TestNats;
  beforeAll(async () => {
    t = await startTestNats();
  });
  afterAll(async () => t?.stop());

  it('follows puts and deletes, and reads a bucket removed and made again from its start', async () => {
    const kv = await t.nats.kvm.create('mirror-probe');
    await kv.put('a', encodeJson({ v: 1 }));
    await kv.put('b', encodeJson({ v: 2 }));
    const mirror = new KvMirror<{ v: number }>(kv, t.nats.nc, 200);
    await mirror.start();
    try {
      await until('both keys', () => mirror.entries.size === 2);
      await kv.delete('a');
      await until('the delete', () => !mirror.entries.has('a'));
      // Made anew: its revisions start over, and what the old one held must not linger.
      await t.nats.kvm.open('mirror-probe').then((old) => old.destroy());
      const again = await t.nats.kvm.create('mirror-probe');
      await again.put('c', encodeJson({ v: 3 }));
      await until('the new bucket alone', () => mirror.entries.size === 1 && mirror.entries.get('c')?.v === 3);
      expect([...mirror.entries.keys()]).toEqual(['c']);
    } finally {
      mirror.stop();
    }
  });

  it('replaces a watch that stopped delivering: its consumer gone from the server, the connection none the wiser', async () => {
    const kv = await t.nats.kvm.create('mirror-stall');
    await kv.put('a', encodeJson({ v: 1 }));
    const mirror = new KvMirror<{ v: number }>(kv, t.nats.nc, 200);
    await mirror.start();
    try {
      await until('the first value', () => mirror.entries.get('a')?.v === 1);
      for await (const c of await t.nats.jsm.consumers.list('KV_mirror-stall')) await t.nats.jsm.consumers.delete('KV_mirror-stall', c.name);
      const at = Date.now();
      for (let v = 2; v <= 5; v++) await kv.put('a', encodeJson({ v }));
      await until('the values written after the loss', () => mirror.entries.get('a')?.v === 5, 10_000);
      console.log(`[kv-mirror] caught up ${Date.now() - at} ms after its consumer was removed`);
    } finally {
      mirror.stop();
    }
  });

  it('never takes a busy bucket for one made anew: no key drops out while writes outrun its look at the bucket', async () => {
    const kv = await t.nats.kvm.create('mirror-busy');
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    for (const k of keys) await kv.put(k, encodeJson({ v: 0 }));
    // Looks at the bucket every 20 ms while hundreds of writes a second land.
    const mirror = new KvMirror<{ v: number }>(kv, t.nats.nc, 20);
    const dropped = new Set<string>();
    mirror.onChange((key, value) => {
      if (value === undefined) dropped.add(key);
    });
    await mirror.start();
    try {
      await until('every key', () => mirror.entries.size === keys.length);
      const end = Date.now() + 3000;
      let writes = 0;
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = w; Date.now() < end; i += 8) {
            await kv.put(keys[i % keys.length]!, encodeJson({ v: i }));
            writes++;
          }
        }),
      );
      expect(writes).toBeGreaterThan(300);
      expect([...dropped]).toEqual([]);
    } finally {
      mirror.stop();
    }
  });
});
