import { describe, expect, it } from 'vitest';
import {
  diskNameToIndex,
  netmaskToPrefix,
  parseBitmap,
  parseIp,
  parseMac,
  parseUuid,
  scaleInteger,
  ULLONG_MAX,
} from '../../contracts/xml/units.ts';

const scale = (v: number | bigint, unit: string | undefined, dflt = 1024n) => {
  const r = scaleInteger(BigInt(v), unit, dflt, ULLONG_MAX);
  return r.ok ? r.value : r.reason;
};

describe('scaleInteger follows virScaleInteger', () => {
  const K = 1024n;
  it.each([
    ['b', 1n],
    ['B', 1n],
    ['byte', 1n],
    ['bytes', 1n],
    ['BYTES', 1n],
    ['k', K],
    ['K', K],
    ['KiB', K],
    ['kib', K],
    ['KB', 1000n],
    ['kB', 1000n],
    ['M', K ** 2n],
    ['MiB', K ** 2n],
    ['MB', 1000n ** 2n],
    ['G', K ** 3n],
    ['GiB', K ** 3n],
    ['GB', 1000n ** 3n],
    ['T', K ** 4n],
    ['TiB', K ** 4n],
    ['TB', 1000n ** 4n],
    ['P', K ** 5n],
    ['PiB', K ** 5n],
    ['PB', 1000n ** 5n],
    ['E', K ** 6n],
    ['EiB', K ** 6n],
    ['EB', 1000n ** 6n],
  ])('unit %s scales by %s', (unit, factor) => {
    expect(scale(3, unit)).toBe(3n * factor);
  });

  it('uses the default scale when no unit is given', () => {
    expect(scale(4, undefined, 1024n)).toBe(4096n);
    expect(scale(4, '', 1n)).toBe(4n);
  });

  it.each(['Q', 'kbit', 'KiBB', 'mb2', 'iB', 'x'])('refuses the unknown suffix %s', (unit) => {
    expect(scale(1, unit)).toBe(`unknown suffix '${unit}'`);
  });

  it('refuses values beyond the limit', () => {
    expect(scaleInteger(16n, 'EiB', 1024n, ULLONG_MAX)).toEqual({ ok: false, reason: 'value too large: 16EiB' });
    expect(scaleInteger(15n, 'EiB', 1024n, ULLONG_MAX).ok).toBe(true);
  });
});

describe('parseBitmap follows virBitmapParse', () => {
  it.each([
    ['0', [0]],
    ['0-3', [0, 1, 2, 3]],
    ['0-3,^2', [0, 1, 3]],
    ['1,2,3,5-7,^6', [1, 2, 3, 5, 7]],
    [' 1 , 3 - 4 ', [1, 3, 4]],
    ['^1', []],
  ])('%s', (raw, bits) => {
    expect([...parseBitmap(raw)!].sort((a, b) => a - b)).toEqual(bits);
  });

  it.each(['', ' ', 'aaa', '1,', ',1', '3-1', '^1-3', '1-', '1;2', '99999999999', '16384'])('refuses %j', (raw) => {
    expect(parseBitmap(raw)).toBeUndefined();
  });
});

describe('identifiers', () => {
  it('parses UUIDs the way virUUIDParse does', () => {
    expect(parseUuid('C7A5FDBD-EDAF-9455-926A-D65C16DB1809')).toBe('c7a5fdbd-edaf-9455-926a-d65c16db1809');
    expect(parseUuid('c7a5fdbdedaf9455926ad65c16db1809')).toBe('c7a5fdbd-edaf-9455-926a-d65c16db1809');
    expect(parseUuid(' c7a5fdbd-edaf-9455-926a-d65c16db1809 ')).toBe('c7a5fdbd-edaf-9455-926a-d65c16db1809');
    expect(parseUuid('c7a5fdbd-edaf-9455-926a-d65c16db180')).toBeUndefined();
    expect(parseUuid('c7a5fdbd-edaf-9455-926a-d65c16db18090')).toBeUndefined();
    expect(parseUuid('g7a5fdbd-edaf-9455-926a-d65c16db1809')).toBeUndefined();
  });

  it('parses MAC addresses into lowercase two-digit form', () => {
    expect(parseMac('52:54:00:AB:c:1')).toBe('52:54:00:ab:0c:01');
    expect(parseMac('52:54:00:ab:cd')).toBeUndefined();
    expect(parseMac('52:54:00:ab:cd:xyz')).toBeUndefined();
  });

  it('maps disk target names to indexes like virDiskNameToIndex', () => {
    expect(diskNameToIndex('sda')).toBe(0);
    expect(diskNameToIndex('hdz')).toBe(25);
    expect(diskNameToIndex('vdaa')).toBe(26);
    expect(diskNameToIndex('xvdb1')).toBe(1);
    expect(diskNameToIndex('ubda')).toBe(0);
    expect(diskNameToIndex('hdaxxxxxxxxxx')).toBeUndefined();
    expect(diskNameToIndex('nvme0n1')).toBeUndefined();
    expect(diskNameToIndex('vd1')).toBeUndefined();
    expect(diskNameToIndex('vdA')).toBeUndefined();
  });

  it('parses IPv4, IPv6 and netmasks', () => {
    expect(parseIp('192.168.122.1')).toEqual({ family: 'ipv4', value: 0xc0a87a01n });
    expect(parseIp('::1')).toEqual({ family: 'ipv6', value: 1n });
    expect(parseIp('2001:db8::ff00:42:8329')?.family).toBe('ipv6');
    expect(parseIp('::ffff:10.0.0.1')?.value).toBe(0xffff0a000001n);
    expect(parseIp('fd00:beef:10:7::1:f1')?.family).toBe('ipv6');
    expect(parseIp('1.2.3.256')).toBeUndefined();
    expect(parseIp('1::2::3')).toBeUndefined();
    expect(parseIp('1:2:3:4:5:6:7:8:9')).toBeUndefined();
    expect(netmaskToPrefix('255.255.254.0')).toBe(23);
    expect(netmaskToPrefix('255.0.255.0')).toBeUndefined();
  });
});
