import { parseDocument } from '../xml/document.ts';
import { isElement, type XElement } from '../xml/tree.ts';
import type { DomainDefinition } from './definition.ts';

/**
 * virtplane's own domain settings live in `<metadata>` under its namespace, since libvirt XML has no
 * element for them; `<metadata>` is kept verbatim, so they survive dumpxml and a define of its output:
 *
 *   <metadata><vp:ha xmlns:vp="https://virtplane.dev/xml/domain/1" restart="on-host-loss"/></metadata>
 */
export const VIRTPLANE_XML_NS = 'https://virtplane.dev/xml/domain/1';
export const HA_ELEMENT = `<vp:ha xmlns:vp="${VIRTPLANE_XML_NS}" restart="on-host-loss"/>`;

const namespaceOf = (el: XElement, inherited: Record<string, string>): { ns: string | undefined; local: string; scope: Record<string, string> } => {
  const scope = { ...inherited };
  for (const [k, v] of Object.entries(el.attrs)) {
    if (k === 'xmlns') scope[''] = v;
    else if (k.startsWith('xmlns:')) scope[k.slice(6)] = v;
  }
  const colon = el.name.indexOf(':');
  const prefix = colon >= 0 ? el.name.slice(0, colon) : '';
  return { ns: scope[prefix], local: colon >= 0 ? el.name.slice(colon + 1) : el.name, scope };
};

/** Does the domain ask to be restarted on another host when its host is lost? */
export const restartsOnHostLoss = (def: Pick<DomainDefinition, 'metadata'> | null | undefined): boolean => {
  const text = def?.metadata;
  if (!text || !text.includes(VIRTPLANE_XML_NS)) return false;
  let root: XElement;
  try {
    root = parseDocument(`<metadata>${text}</metadata>`);
  } catch {
    return false;
  }
  return root.children.some((c) => {
    if (!isElement(c)) return false;
    const { ns, local } = namespaceOf(c, {});
    return ns === VIRTPLANE_XML_NS && local === 'ha' && c.attrs.restart === 'on-host-loss';
  });
};

/** The metadata with the restart-on-host-loss setting added (as `define --ha` asks). */
export const withRestartOnHostLoss = (metadata: string | undefined): string =>
  restartsOnHostLoss({ metadata }) ? (metadata ?? '') : `${metadata ?? ''}${HA_ELEMENT}`;
