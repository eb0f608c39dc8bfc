import type { DomainDefinition } from '../domain/definition.ts';
import type { NetworkDefinition } from '../network/definition.ts';
import type { StoragePoolDefinition, StorageVolumeDefinition } from '../storage/definition.ts';
import { guard, limitsOf, parseTree, type ParseOptions } from './common.ts';
import { parseDocument } from './document.ts';
import { domainSpec, formatDomainXml } from './domain.ts';
import { xmlError } from './errors.ts';
import { formatNetworkXml, networkSpec } from './network.ts';
import { formatPoolXml, formatVolumeXml, poolSpec, volumeSpec } from './storage.ts';

/**
 * The libvirt XML layer: pure functions between libvirt documents and virtplane's stored models.
 *
 * Parsing keeps the whole document, so elements and attributes the model does not know survive:
 * every parse returns the model with `xml` set to the canonical document (what dumpxml returns),
 * with libvirt's defaults filled in (uuid, MAC addresses, currentMemory, disk bus, ...) and sizes in
 * KiB (memory) or bytes (storage). Formatting writes the model's fields into its `xml` (or into an
 * empty document when there is none): the model wins for the fields it has, a field left undefined
 * removes what it maps to, and everything else in `xml` is kept. Every failure is a VirtError with
 * code 'xml-error' whose message names the element or attribute path at fault.
 */

export { parseDomainXml, formatDomainXml } from './domain.ts';
export { parseNetworkXml, formatNetworkXml } from './network.ts';
export { parsePoolXml, formatPoolXml, parseVolumeXml, formatVolumeXml } from './storage.ts';
export { DEFAULT_LIMITS, type DocumentLimits } from './document.ts';
export type { ParseOptions } from './common.ts';

export type AnyDefinition =
  | { kind: 'domain'; definition: DomainDefinition }
  | { kind: 'network'; definition: NetworkDefinition }
  | { kind: 'pool'; definition: StoragePoolDefinition }
  | { kind: 'volume'; definition: StorageVolumeDefinition };

export type XmlKind = AnyDefinition['kind'];

/** Parses any libvirt document virtplane understands, dispatching on its root element. */
export function parseAnyXml(text: string, opts: ParseOptions = {}): AnyDefinition {
  return guard('cannot parse XML', () => {
    const root = parseDocument(text, limitsOf(opts));
    switch (root.name) {
      case 'domain':
        return { kind: 'domain', definition: parseTree(domainSpec, root, opts) };
      case 'network':
        return { kind: 'network', definition: parseTree(networkSpec, root, opts) };
      case 'pool':
        return { kind: 'pool', definition: parseTree(poolSpec, root, opts) };
      case 'volume':
        return { kind: 'volume', definition: parseTree(volumeSpec, root, opts) };
      default:
        throw xmlError(`unknown root element <${root.name}>: expected <domain>, <network>, <pool> or <volume>`, { root: root.name });
    }
  });
}

/** Formats whatever `parseAnyXml` returned, by its kind. */
export function formatAnyXml(a: AnyDefinition): string {
  switch (a.kind) {
    case 'domain':
      return formatDomainXml(a.definition);
    case 'network':
      return formatNetworkXml(a.definition);
    case 'pool':
      return formatPoolXml(a.definition);
    case 'volume':
      return formatVolumeXml(a.definition);
  }
}
