import { describe, expect, it } from 'vitest';
import { VirtError } from '../../contracts/errors.ts';
import { parseAnyXml, parseDomainXml, parseNetworkXml, parsePoolXml, parseVolumeXml } from '../../contracts/xml/index.ts';

/** Every hostile document must fail with an xml-error that says what is wrong, quickly. */
const refused = (doc: unknown, message: string | RegExp, budgetMs = 1000) => {
  const t = performance.now();
  let err: unknown;
  try {
    parseAnyXml(doc as string);
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t;
  expect(err, 'the document was accepted').toBeInstanceOf(VirtError);
  expect((err as VirtError).code).toBe('xml-error');
  expect((err as VirtError).message).toMatch(message);
  expect(ms).toBeLessThan(budgetMs);
  return err as VirtError;
};

const minimal = (inner = '') => `<domain type='kvm'><name>g</name><memory>1024</memory><os><type>hvm</type></os>${inner}</domain>`;

describe('broken XML', () => {
  it.each([
    ['unclosed root', "<domain type='kvm'><name>x</name>", /not well-formed: Unclosed tag 'domain'/],
    ['unclosed child', "<domain type='kvm'><name>x</domain>", /not well-formed: Expected closing tag 'name'/],
    ['libvirt test case', '<dom', /not well-formed: Unclosed tag 'dom'/],
    ['mismatched case', '<domain></Domain>', /not well-formed/],
    ['two roots', '<domain/><domain/>', /more than one root element/],
    ['text after the root', `${minimal()}junk`, /not well-formed/],
    ['text only', 'hello', /not well-formed/],
    ['empty', '', /empty/],
    ['blank', '   \n', /empty/],
    ['duplicate attribute', "<domain type='kvm' type='qemu'/>", /Attribute 'type' is repeated/],
    ['attribute without value', '<domain type/>', /boolean attribute 'type' is not allowed/],
    ['unquoted attribute', '<domain type=kvm/>', /not well-formed/],
    ["'<' in an attribute", "<domain type='k<vm'/>", /'<' in the value of attribute 'type'/],
    ['bare ampersand', "<domain type='kvm'><name>a & b</name></domain>", /not well-formed: char '&' is not expected/],
    ['ampersand in an attribute', "<domain type='a & b'/>", /'&' not followed by an entity reference/],
    ['control character', "<domain type='kvm'><name>x\u0001</name></domain>", /character U\+0001 is not allowed/],
    ['NUL character reference', "<domain type='kvm'><name>&#0;</name></domain>", /invalid character reference '&#0;'/],
    ['unterminated comment', "<domain type='kvm'><!-- x </domain>", /unterminated comment/],
    ['unterminated CDATA', "<domain type='kvm'><name><![CDATA[x</name></domain>", /unterminated CDATA/],
    ['not a string', 42, /must be a string/],
  ])('%s', (_what, doc, message) => {
    refused(doc, message);
  });

  it('refuses a wrong root element for each kind and in parseAnyXml', () => {
    refused('<domainx/>', /unknown root element <domainx>/);
    expect(() => parseDomainXml('<network/>')).toThrow(/unexpected root element <network>, expecting <domain>/);
    expect(() => parseNetworkXml('<pool/>')).toThrow(/expecting <network>/);
    expect(() => parsePoolXml('<volume/>')).toThrow(/expecting <pool>/);
    expect(() => parseVolumeXml('<domain/>')).toThrow(/expecting <volume>/);
  });

  it('refuses names that would touch JavaScript prototypes', () => {
    refused("<domain type='kvm' __proto__='x'/>", /__proto__/);
    refused(minimal('<constructor/>'), /constructor/);
  });

  it('accepts a byte order mark, CRLF line ends, CDATA, comments and processing instructions', () => {
    const d = parseDomainXml(`\uFEFF<?xml version='1.0' encoding='UTF-8'?>\r\n<!-- note -->\r\n<domain type='kvm'><name><![CDATA[a<b]]></name><memory>1024</memory><os><type>hvm</type></os></domain>`);
    expect(d.name).toBe('a<b');
    expect(d.xml).toContain('<name>a&lt;b</name>');
  });
});

describe('entities', () => {
  it('refuses the billion laughs without expanding anything', () => {
    const lol = ['<!ENTITY lol "lol">'];
    for (let i = 1; i <= 9; i++) lol.push(`<!ENTITY lol${i} "${`&lol${i === 1 ? '' : i - 1};`.repeat(10)}">`);
    const doc = `<?xml version="1.0"?><!DOCTYPE lolz [${lol.join('')}]><domain type='kvm'><name>&lol9;</name></domain>`;
    refused(doc, /<!DOCTYPE> declarations are not allowed/, 100);
  });

  it('refuses external entities (XXE) and never reads files', () => {
    const e = refused(
      `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><domain type='kvm'><name>&x;</name><memory>1</memory><os><type>hvm</type></os></domain>`,
      /<!DOCTYPE> declarations are not allowed/,
    );
    expect(e.message).not.toContain('root:');
    refused(`<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]><domain/>`, /<!DOCTYPE> declarations are not allowed/);
    refused(`<!doctype domain SYSTEM "file:///etc/passwd"><domain/>`, /declarations are not allowed/);
    refused(`<domain type='kvm'><!ENTITY x "y"></domain>`, /<!ENTITY> declarations are not allowed/);
  });

  it('refuses references to entities that were never declared', () => {
    refused(minimal().replace('<name>g</name>', '<name>&x;</name>'), /undefined entity '&x;'/);
    refused("<domain type='&foo;'/>", /undefined entity '&foo;'/);
  });

  it('decodes the predefined entities and character references', () => {
    const d = parseDomainXml(minimal('<description>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#x1F600;</description>'));
    expect(d.description).toBe(`<>&'"AB\u{1F600}`);
  });
});

describe('limits', () => {
  it('refuses a document over 1 MiB before parsing it', () => {
    const big = minimal(`<description>${'a'.repeat(1024 * 1024)}</description>`);
    refused(big, /larger than 1048576 bytes/, 50);
    const multiByte = minimal(`<description>${'é'.repeat(600 * 1024)}</description>`);
    refused(multiByte, /larger than 1048576 bytes/, 50);
  });

  it('honours a caller-given size limit', () => {
    expect(() => parseDomainXml(minimal(), { limits: { maxBytes: 40 } })).toThrow(/larger than 40 bytes/);
  });

  it('refuses deeply nested elements', () => {
    const deep = `<domain>${'<a>'.repeat(100_000)}${'</a>'.repeat(100_000)}</domain>`;
    refused(deep, /nested deeper than 256 levels/, 200);
    const deepSelfClosingStillCounts = `<domain>${'<a x=">">'.repeat(300)}${'</a>'.repeat(300)}</domain>`;
    refused(deepSelfClosingStillCounts, /nested deeper than 256 levels/);
  });

  it('keeps moderately deep unknown content', () => {
    const d = parseDomainXml(minimal(`<metadata>${'<a>'.repeat(200)}x${'</a>'.repeat(200)}</metadata>`));
    expect(d.metadata?.split('<a>').length).toBe(201);
  });

  it('handles documents that are large but within the limits in bounded time', () => {
    const manyElements = minimal(`<features>${Array.from({ length: 40_000 }, (_, i) => `<f${i}/>`).join('')}</features>`);
    const t = performance.now();
    expect(Object.keys(parseDomainXml(manyElements).features ?? {})).toHaveLength(40_000);
    expect(performance.now() - t).toBeLessThan(5000);
    const manyAttrs = `<domain type='kvm' ${Array.from({ length: 30_000 }, (_, i) => `a${i}='1'`).join(' ')}><name>x</name><memory>1</memory><os><type>hvm</type></os></domain>`;
    const t2 = performance.now();
    parseDomainXml(manyAttrs);
    expect(performance.now() - t2).toBeLessThan(5000);
  });
});

describe('invalid units and numbers', () => {
  it.each([
    ["<memory unit='lightyears'>1</memory>", /\/domain\/memory: unknown suffix 'lightyears'/],
    ['<memory>0x10</memory>', /\/domain\/memory: invalid value '0x10'/],
    ['<memory>1e6</memory>', /\/domain\/memory: invalid value '1e6'/],
    ['<memory>-1</memory>', /\/domain\/memory: invalid value '-1'/],
    ["<memory unit='PiB'>99999</memory>", /value too large/],
    ['<memory>18446744073709551616</memory>', /value too large/],
    ['<memory>0</memory>', /Memory size must be specified/],
  ])('%s', (mem, message) => {
    refused(`<domain type='kvm'><name>g</name>${mem}<os><type>hvm</type></os></domain>`, message);
  });

  it.each([
    ['<vcpu>0</vcpu>', /vCPUs must be at least 1/],
    ['<vcpu>-2</vcpu>', /\/domain\/vcpu: invalid value '-2'/],
    ['<vcpu>1.5</vcpu>', /\/domain\/vcpu: invalid value '1.5'/],
    ['<vcpu>99999999999999999999</vcpu>', /\/domain\/vcpu: invalid value/],
    ["<vcpu current='x'>2</vcpu>", /\/domain\/vcpu\/@current: invalid value 'x'/],
    ["<cpu><topology sockets='0'/></cpu>", /\/domain\/cpu\/topology\/@sockets: invalid value '0'/],
    ["<devices><graphics type='vnc' port='NaN'/></devices>", /\/domain\/devices\/graphics\[1\]\/@port: invalid value 'NaN'/],
    ["<devices><interface type='user'><mtu size='-9000'/></interface></devices>", /\/domain\/devices\/interface\[1\]\/mtu\/@size: invalid value '-9000'/],
    ["<devices><disk><target dev='vda'/><boot order='first'/></disk></devices>", /\/boot\/@order: invalid value 'first'/],
    ['<pm><suspend-to-mem enabled="maybe"/></pm>', /suspend-to-mem\/@enabled: invalid value 'maybe', expected 'yes' or 'no'/],
  ])('%s', (inner, message) => {
    refused(minimal(inner), message);
  });

  it('refuses bad sizes in pools and volumes', () => {
    refused("<volume><name>v</name><capacity unit='XB'>1</capacity></volume>", /unknown suffix 'XB'/);
    refused("<volume><name>v</name><capacity>-1</capacity></volume>", /\/volume\/capacity: invalid value '-1'/);
    refused("<pool type='dir'><name>p</name><available>lots</available><target><path>/p</path></target></pool>", /\/pool\/available: invalid value 'lots'/);
  });
});
