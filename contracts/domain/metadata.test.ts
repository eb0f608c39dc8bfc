import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import { SetMetadataRequest } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import { formatDomainXml, parseDomainXml } from '../xml/domain.ts';
import { findAppMetadata, formatAppMetadata, withAppMetadata } from './metadata.ts';

/** virsh metadata through the decider: application elements by namespace, and hostile elements refused. */

const UUID = '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
const def = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'test', memoryKiB: 1048576, vcpus: 1 });
const defined: GivenEvent<DomainEventBody> = { type: 'DomainDefined', data: { definition: def, hostId: 'h1', placementEpoch: 1, added: true } };
const set = (uri: string, key: string | undefined, value: string): DomainCommand => ({ type: 'set-metadata', field: 'metadata', value, live: false, config: false, uri, ...(key ? { key } : {}) });

describe('metadata', () => {
  it('stores an element under its key bound to the URI, replaces it by namespace, and dumpxml shows it', () => {
    const first = spec.given([defined]).when(set('http://example.org/a', 'app', "<foo bar='1'>hi</foo>")).decided();
    const s1 = spec.given([defined, ...first]).state;
    expect(s1.definition?.metadata).toBe(`<app:foo xmlns:app='http://example.org/a' bar='1'>hi</app:foo>\n`);
    const second = spec.given([defined, ...first]).when(set('http://example.org/a', 'x', '<other><in/></other>')).decided();
    const s2 = spec.given([defined, ...first, ...second]).state;
    expect(formatAppMetadata(findAppMetadata(s2.definition?.metadata, 'http://example.org/a')!)).toBe('<other>\n  <in/>\n</other>');
    const xml = formatDomainXml(s2.definition!);
    expect(xml).toContain("<x:other xmlns:x='http://example.org/a'>");
    // What dumpxml gives defines the same element again.
    expect(findAppMetadata(parseDomainXml(xml).metadata, 'http://example.org/a')?.name).toBe('x:other');
    // The HA element of another namespace stays beside it.
    const withHa = withAppMetadata(`<vp:ha xmlns:vp='https://virtplane.dev/xml/domain/1' restart='on-host-loss'/>`, 'http://example.org/a', 'app', '<foo/>');
    expect(findAppMetadata(withHa, 'https://virtplane.dev/xml/domain/1')).toBeDefined();
    expect(withAppMetadata(withHa, 'http://example.org/a', undefined, null)).not.toContain('foo');
  });

  it('refuses hostile or malformed elements and a set without a key, recording nothing', () => {
    const given = spec.given([defined]);
    for (const bad of ['not xml', '<x/><y/>', '<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', `<x>${'a'.repeat(70 * 1024)}</x>`, '<x>']) {
      given.when(set('http://example.org/a', 'app', bad)).thenThrows('xml-error');
    }
    given.when(set('http://example.org/a', undefined, '<x/>')).thenThrows('invalid-arg', 'namespace key is required when modifying metadata');
    expect(SetMetadataRequest.safeParse({ domain: 'web1', field: 'metadata', value: '<x/>' }).success).toBe(false);
    expect(SetMetadataRequest.safeParse({ domain: 'web1', field: 'metadata', uri: 'u', key: 'bad key', value: '<x/>' }).success).toBe(false);
  });
});
