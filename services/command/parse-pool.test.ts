import { afterAll, describe, expect, it } from 'vitest';
import { isVirtError } from '../../contracts/errors.ts';
import { seededRandomBytes, uuidFromSeed } from '../../contracts/ids.ts';
import { parseDomainXml, parseNetworkXml } from '../../contracts/xml/index.ts';
import { INLINE_BYTES, ParsePool } from './parse-pool.ts';

const DOMAIN = "<domain type='test'><name>web1</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices><interface type='network'><source network='default'/></interface></devices></domain>";

describe('the XML parse pool', () => {
  const pool = new ParsePool(2);
  afterAll(() => pool.close());

  it('gives what a parse on the loop gives, with the same seeded uuid and MAC', async () => {
    const seed = 'cmd-0001-seed';
    const onLoop = parseDomainXml(DOMAIN, { uuid: () => uuidFromSeed(seed), randomBytes: seededRandomBytes(seed) });
    expect(await pool.parse('domain', DOMAIN, seed)).toEqual(onLoop);
    const net = "<network><name>n1</name><uuid>0C7A3F52-9D1E-4B6A-8F2C-5E4D3C2B1A09</uuid></network>";
    expect(await pool.parse('network', net, seed)).toEqual(parseNetworkXml(net, { randomBytes: seededRandomBytes(seed) }));
  });

  it('reads documents in NFC', async () => {
    const def = await pool.parse('domain', DOMAIN.replace('web1', 'cafe\u0301'), 'seed-nfc-0001');
    expect(def.name).toBe('caf\u00e9');
  });

  it('answers a bad document with the same structured error, and keeps working', async () => {
    const bad = await pool.parse('domain', '<domain><name>x', 's-00000001').catch((e: unknown) => e);
    expect(isVirtError(bad) && bad.code).toBe('xml-error');
    const many = await Promise.all(Array.from({ length: 10 }, (_, i) => pool.parse('domain', DOMAIN.replace('web1', `web${i}`), `seed-${i}-xxxx`)));
    expect(many.map((d) => d.name)).toEqual(Array.from({ length: 10 }, (_, i) => `web${i}`));
  });
});

describe('large definitions go to a thread, small ones stay on the loop, with the same answers', () => {
  const pool = new ParsePool(1);
  afterAll(() => pool.close());

  it('a large document parses on the thread like on the loop; JSON definitions are checked the same either way', async () => {
    const metadata = `<app:x xmlns:app='urn:x'>${"<app:i a='1'/>".repeat(3000)}</app:x>`;
    const big = DOMAIN.replace('<devices>', `<metadata>${metadata}</metadata><devices>`);
    expect(big.length).toBeGreaterThan(INLINE_BYTES);
    const seed = 'cmd-0002-seed';
    expect(await pool.parse('domain', big, seed)).toEqual(parseDomainXml(big, { uuid: () => uuidFromSeed(seed), randomBytes: seededRandomBytes(seed) }));

    const json = { name: 'j1', uuid: '0c7a3f52-9d1e-4b6a-8f2c-5e4d3c2b1a09', memoryKiB: 65536, vcpus: 1, description: 'd'.repeat(INLINE_BYTES) };
    expect((await pool.validate('domain', json)).description).toBe(json.description);
    for (const bad of [{ ...json, vcpus: 0 }, { ...json, vcpus: 0, description: 'short' }]) {
      const e = await pool.validate('domain', bad).catch((x: unknown) => x);
      expect(isVirtError(e) && e.code).toBe('invalid-arg');
      expect(isVirtError(e) && e.message).toMatch(/vcpus/);
    }
  });
});
