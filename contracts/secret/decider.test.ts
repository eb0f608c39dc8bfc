import { describe, expect, it } from 'vitest';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import { formatSecretXml, parseSecretXml } from '../xml/secret.ts';
import { decideSecret, evolveSecret, initialSecretState } from './decider.ts';
import type { SecretDefinition } from './definition.ts';
import type { SecretEventBody } from './events.ts';

const UUID = 'c4a7b1b2-1111-4c3e-9a9a-000000000001';
const spec = deciderSpec({ decide: decideSecret, evolve: evolveSecret, initialState: () => initialSecretState(UUID) }, { aggregateType: 'secret', aggregateId: UUID });

const ceph: SecretDefinition = { uuid: UUID, ephemeral: false, private: false, description: 'ceph client', usage: { type: 'ceph', id: 'client.admin secret' } };
type Ev = GivenEvent<SecretEventBody>;
const defined = (d: SecretDefinition = ceph): Ev => ({ type: 'SecretDefined', data: { definition: d } });
const valueSet = (n = 1): Ev => ({ type: 'SecretValueSet', data: { valueId: String(n).padStart(32, '0'), digest: 'ab'.repeat(32), store: 'disk' } });
const NO_SECRET = `Secret not found: no secret with matching uuid '${UUID}'`;

describe('secret decider', () => {
  it('defines a new secret without a value, and a redefinition keeps the value', () => {
    const { after } = spec.given().when({ type: 'define', definition: ceph, claimSeq: 1 }).then([defined()]);
    expect(after).toMatchObject({ exists: true, name: 'ceph:client.admin secret', value: null });
    const again = spec.given([defined(), valueSet()]).when({ type: 'define', definition: { ...ceph, description: 'new' }, claimSeq: 1 }).then([defined({ ...ceph, description: 'new' })]);
    expect(again.after.value?.valueId).toBe('1'.padStart(32, '0'));
  });

  it("refuses another usage id for a uuid, and making a private secret public, in libvirt's words", () => {
    spec.given([defined()]).when({ type: 'define', definition: { ...ceph, usage: { type: 'ceph', id: 'other' } }, claimSeq: 1 }).thenThrows('internal-error', `a secret with UUID ${UUID} is already defined for use with client.admin secret`);
    spec.given([defined({ ...ceph, usage: undefined })]).when({ type: 'define', definition: ceph, claimSeq: 1 }).thenThrows('internal-error', `a secret with UUID ${UUID} is already defined for use with (null)`);
    spec.given([defined({ ...ceph, private: true })]).when({ type: 'define', definition: ceph, claimSeq: 1 }).thenThrows('internal-error', 'cannot change private flag on existing secret');
    // The other way is allowed, as in libvirt.
    spec.given([defined()]).when({ type: 'define', definition: { ...ceph, private: true }, claimSeq: 1 }).then([defined({ ...ceph, private: true })]);
  });

  it('refuses a define whose usage claim was revoked while it was in flight', () => {
    spec.given([{ type: 'NameClaimRevoked', data: { name: 'ceph:client.admin secret', claimSeq: 5 } }]).when({ type: 'define', definition: ceph, claimSeq: 5 }).thenThrows('conflict');
  });

  it('undefines, and forgets the value: a secret defined again under the uuid has none', () => {
    const { after } = spec.given([defined(), valueSet()]).when({ type: 'undefine' }).then([{ type: 'SecretUndefined', data: {} }]);
    expect(after).toMatchObject({ exists: false, value: null });
    spec.given([defined(), valueSet(), { type: 'SecretUndefined', data: {} }, defined()]).when({ type: 'get-value' }).thenThrows('no-secret', `Secret not found: secret '${UUID}' does not have a value`);
  });

  it('an unknown secret is no-secret for every verb', () => {
    for (const cmd of [{ type: 'undefine' }, { type: 'get-value' }, { type: 'set-value', valueId: '1'.repeat(32), digest: '0'.repeat(64) }] as const) {
      spec.given().when(cmd).thenThrows('no-secret', NO_SECRET);
      spec.given([defined(), { type: 'SecretUndefined', data: {} }]).when(cmd).thenThrows('no-secret', NO_SECRET);
    }
  });

  it('records that a value was set, by whom and where it is, and an ephemeral value goes to memory', () => {
    const { after } = spec.given([defined()]).when({ type: 'set-value', valueId: '2'.repeat(32), digest: 'cd'.repeat(32) }).then([{ type: 'SecretValueSet', data: { valueId: '2'.repeat(32), digest: 'cd'.repeat(32), store: 'disk' } }]);
    expect(after.value).toMatchObject({ valueId: '2'.repeat(32), setBy: 'spec' });
    spec.given([defined({ ...ceph, ephemeral: true })]).when({ type: 'set-value', valueId: '2'.repeat(32), digest: 'cd'.repeat(32) }).then([{ type: 'SecretValueSet', data: { valueId: '2'.repeat(32), digest: 'cd'.repeat(32), store: 'memory' } }]);
  });

  it('get-value: refused for a private secret before the value is looked for; records nothing', () => {
    spec.given([defined({ ...ceph, private: true })]).when({ type: 'get-value' }).thenThrows('invalid-secret', 'Invalid secret: secret is private');
    spec.given([defined()]).when({ type: 'get-value' }).thenThrows('no-secret', `Secret not found: secret '${UUID}' does not have a value`);
    spec.given([defined(), valueSet()]).when({ type: 'get-value' }).thenNothing();
  });
});

describe('secret XML', () => {
  const gen = '00000000-0000-4000-8000-0000000000aa';
  it("reads libvirt's document and writes virSecretDefFormat's", () => {
    const d = parseSecretXml(`<secret private='yes'>\n<description>a &amp; b</description><uuid>C4A7B1B2-1111-4C3E-9A9A-000000000001</uuid><usage type='volume'><volume>/var/lib/x.img</volume></usage><extra/></secret>`, gen);
    expect(d).toEqual({ uuid: UUID, ephemeral: false, private: true, description: 'a & b', usage: { type: 'volume', id: '/var/lib/x.img' } });
    expect(formatSecretXml(d)).toBe(
      `<secret ephemeral='no' private='yes'>\n  <uuid>${UUID}</uuid>\n  <description>a &amp; b</description>\n  <usage type='volume'>\n    <volume>/var/lib/x.img</volume>\n  </usage>\n</secret>\n`,
    );
    expect(parseSecretXml('<secret/>', gen)).toEqual({ uuid: gen, ephemeral: false, private: false });
    expect(parseSecretXml("<secret><usage type='none'/></secret>", gen).usage).toBeUndefined();
    for (const [type, tag] of [['ceph', 'name'], ['iscsi', 'target'], ['tls', 'name'], ['vtpm', 'name']] as const) {
      const x = parseSecretXml(`<secret><usage type='${type}'><${tag}>u1</${tag}></usage></secret>`, gen);
      expect(x.usage).toEqual({ type, id: 'u1' });
      expect(formatSecretXml(x)).toContain(`<${tag}>u1</${tag}>`);
    }
  });

  it("refuses bad documents with libvirt's messages and codes", () => {
    const bad: Array<[string, string, string | RegExp]> = [
      ['<domain/>', 'xml-error', 'unexpected root element <domain>, expecting <secret>'],
      ["<secret ephemeral='maybe'/>", 'xml-error', "invalid value of 'ephemeral'"],
      ["<secret private='1'/>", 'xml-error', "invalid value of 'private'"],
      ['<secret><uuid>not-a-uuid</uuid></secret>', 'internal-error', 'malformed uuid element'],
      ['<secret><usage/></secret>', 'xml-error', 'unknown secret usage type'],
      ["<secret><usage type='nfs'/></secret>", 'config-unsupported', 'unknown secret usage type nfs'],
      ["<secret><usage type='ceph'><name></name></usage></secret>", 'internal-error', 'Ceph usage specified, but name is missing'],
      ["<secret><usage type='iscsi'/></secret>", 'internal-error', 'iSCSI usage specified, but target is missing'],
      ["<secret><usage type='volume'/></secret>", 'internal-error', 'volume usage specified, but volume path is missing'],
      ['<!DOCTYPE s [<!ENTITY a "aaaa">]><secret><description>&a;</description></secret>', 'xml-error', /DOCTYPE|ENTITY/],
      ['<secret><description>', 'xml-error', /not well-formed/],
      [`<secret><description>${'x'.repeat(70_000)}</description></secret>`, 'xml-error', /larger than 65536 bytes/],
      [`<secret><usage type='ceph'><name>${'n'.repeat(2000)}</name></usage></secret>`, 'invalid-arg', /usage\.id/],
    ];
    for (const [xml, code, message] of bad) {
      let err: unknown;
      try {
        parseSecretXml(xml, gen);
      } catch (e) {
        err = e;
      }
      expect(err, xml.slice(0, 60)).toMatchObject({ code });
      if (typeof message === 'string') expect((err as Error).message).toBe(message);
      else expect((err as Error).message).toMatch(message);
    }
  });
});
