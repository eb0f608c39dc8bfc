import { z } from 'zod';
import { virtError } from '../errors.ts';
import { parseDocument } from '../xml/document.ts';
import { isElement, serializeChildren, type XElement, type XNode } from '../xml/tree.ts';

/**
 * virsh metadata: an application's own element in the domain's `<metadata>`, one per namespace URI,
 * kept as libvirt keeps it (virDomainSetMetadata / virDomainGetMetadata with
 * VIR_DOMAIN_METADATA_ELEMENT): the element is stored under the caller's prefix (`--key`) bound to
 * the URI, replacing any element of that namespace, and read back without its namespace. The element
 * comes from whoever sends the command, so it is parsed with the same limits as any document (no
 * DOCTYPE, no entities, bounded size) and must be exactly one element.
 */

/** An XML name prefix: what libvirt accepts as a namespace key. */
const NcName = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
export const METADATA_XML_MAX = 64 * 1024;

export const MetadataFields = {
  uri: z.string().min(1).max(1024).optional(),
  key: z.string().max(256).regex(NcName, 'must be an XML name prefix').optional(),
};

const parse = (text: string | undefined): XElement => parseDocument(`<metadata>${text ?? ''}</metadata>`);

/** The namespace an element of `<metadata>` is in, by its own declaration. */
const namespaceOf = (el: XElement): string | undefined => {
  const colon = el.name.indexOf(':');
  return colon < 0 ? el.attrs.xmlns : el.attrs[`xmlns:${el.name.slice(0, colon)}`];
};

const elements = (root: XElement): XElement[] => root.children.filter((c): c is XElement => isElement(c));

/** The element an application keeps under `uri`, if any. */
export const findAppMetadata = (text: string | undefined, uri: string): XElement | undefined => elements(parse(text)).find((el) => namespaceOf(el) === uri);

/** The stored `<metadata>` content with the element of `uri` replaced by `xml` under `key`, or removed (xml null). */
export const withAppMetadata = (text: string | undefined, uri: string, key: string | undefined, xml: string | null): string => {
  const root = parse(text);
  const kept: XNode[] = root.children.filter((c) => !(isElement(c) && namespaceOf(c) === uri));
  if (xml !== null) {
    if (!key) throw virtError('invalid-arg', 'namespace key is required when modifying metadata', { raw: true });
    if (Buffer.byteLength(xml, 'utf8') > METADATA_XML_MAX) throw virtError('xml-error', `metadata element larger than ${METADATA_XML_MAX} bytes`);
    const el = parseDocument(xml);
    const local = el.name.includes(':') ? el.name.slice(el.name.indexOf(':') + 1) : el.name;
    const attrs: Record<string, string> = Object.create(null) as Record<string, string>;
    attrs[`xmlns:${key}`] = uri;
    for (const [k, v] of Object.entries(el.attrs)) if (k !== `xmlns:${key}`) attrs[k] = v;
    kept.push({ ...el, name: `${key}:${local}`, attrs });
  }
  return serializeChildren({ ...root, children: kept });
};

const quote = (v: string) => `"${v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/"/g, '&quot;')}"`;
const text = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** As virsh prints it: the element without its namespace, in libxml's layout (double quotes, two-space indent). */
export const formatAppMetadata = (el: XElement): string => {
  const out: string[] = [];
  const write = (e: XElement, indent: string, top: boolean) => {
    const name = top && e.name.includes(':') ? e.name.slice(e.name.indexOf(':') + 1) : e.name;
    const prefix = top && e.name.includes(':') ? e.name.slice(0, e.name.indexOf(':')) : undefined;
    const attrs = Object.entries(e.attrs)
      .filter(([k]) => !(top && (k === 'xmlns' || (prefix !== undefined && k === `xmlns:${prefix}`))))
      .map(([k, v]) => ` ${k}=${quote(v)}`)
      .join('');
    const kids = e.children.filter((c) => isElement(c) || (typeof c === 'string' && c.trim() !== ''));
    if (kids.length === 0) return void out.push(`${indent}<${name}${attrs}/>`);
    if (kids.every((c) => typeof c === 'string')) return void out.push(`${indent}<${name}${attrs}>${text(kids.join(''))}</${name}>`);
    out.push(`${indent}<${name}${attrs}>`);
    for (const c of kids) {
      if (typeof c === 'string') out.push(`${indent}  ${text(c.trim())}`);
      else write(c as XElement, `${indent}  `, false);
    }
    out.push(`${indent}</${name}>`);
  };
  write(el, '', true);
  return out.join('\n');
};

/** virsh's words when there is no element for the namespace. */
export const metadataNotFound = () => virtError('no-domain-metadata', 'Requested metadata element is not present');
