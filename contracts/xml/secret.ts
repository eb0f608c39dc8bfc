import { isVirtError, virtError } from '../errors.ts';
import { SECRET_USAGE_TYPES, SecretDefinition, USAGE_ELEMENT, type SecretUsageType } from '../secret/definition.ts';
import { MAX_SECRET_XML_BYTES } from '../secret/commands.ts';
import { parseDocument } from './document.ts';
import { quote, xmlError } from './errors.ts';
import { firstChild, isElement, type XElement } from './tree.ts';

/**
 * libvirt's secret XML (src/conf/secret_conf.c): read with its checks and messages, written back as
 * virSecretDefFormat writes it. Unlike the other documents nothing unknown is kept: libvirt keeps
 * only what it parsed, so secret-dumpxml gives back exactly its canonical form.
 */

/** XPath's string(): the text of the element and everything under it. */
const stringValue = (el: XElement): string => {
  let s = '';
  for (const c of el.children) {
    if (typeof c === 'string') s += c;
    else if (isElement(c)) s += stringValue(c);
  }
  return s;
};

/** virXPathString gives NULL for a missing node and for an empty string alike. */
const optionalText = (el: XElement | undefined): string | undefined => {
  if (!el) return undefined;
  const s = stringValue(el);
  return s === '' ? undefined : s;
};

/** virUUIDParse: 32 hex digits, dashes between them allowed, surrounding blanks ignored. */
const parseUuid = (text: string): string | undefined => {
  const hex = text.trim().replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return undefined;
  const x = hex.toLowerCase();
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
};

const yesNo = (el: XElement, name: 'ephemeral' | 'private'): boolean => {
  const v = el.attrs[name];
  if (v === undefined) return false;
  if (v === 'yes') return true;
  if (v === 'no') return false;
  throw xmlError(`invalid value of '${name}'`, { attribute: name, value: quote(v) });
};

const USAGE_MISSING: Record<SecretUsageType, string> = {
  volume: 'volume usage specified, but volume path is missing',
  ceph: 'Ceph usage specified, but name is missing',
  iscsi: 'iSCSI usage specified, but target is missing',
  tls: 'TLS usage specified, but name is missing',
  vtpm: 'vTPM usage specified, but name is missing',
};

/** Parses a secret document; a document without `<uuid>` gets `generatedUuid` (derived from the command id). */
export const parseSecretXml = (text: unknown, generatedUuid: string): SecretDefinition =>
  guarded(() => {
    const root = parseDocument(text, { maxBytes: MAX_SECRET_XML_BYTES, maxDepth: 32 });
    if (root.name !== 'secret') throw xmlError(`unexpected root element <${root.name}>, expecting <secret>`, { root: root.name });
    const ephemeral = yesNo(root, 'ephemeral');
    const isPrivate = yesNo(root, 'private');
    const uuidEl = firstChild(root, 'uuid');
    const uuidText = optionalText(uuidEl);
    let uuid = generatedUuid;
    if (uuidText !== undefined) {
      const parsed = parseUuid(uuidText);
      if (!parsed) throw virtError('internal-error', 'malformed uuid element', { uuid: quote(uuidText) });
      uuid = parsed;
    }
    const description = optionalText(firstChild(root, 'description'));
    const usageEl = firstChild(root, 'usage');
    let usage: SecretDefinition['usage'];
    if (usageEl) {
      const type = usageEl.attrs.type;
      if (type === undefined || type === '') throw xmlError('unknown secret usage type');
      if (type !== 'none') {
        if (!(SECRET_USAGE_TYPES as readonly string[]).includes(type)) throw virtError('config-unsupported', `unknown secret usage type ${quote(type, 40).slice(1, -1)}`);
        const t = type as SecretUsageType;
        const id = optionalText(firstChild(usageEl, USAGE_ELEMENT[t]));
        if (id === undefined) throw virtError('internal-error', USAGE_MISSING[t]);
        usage = { type: t, id };
      }
    }
    const checked = SecretDefinition.safeParse({ uuid, ephemeral, private: isPrivate, ...(description !== undefined ? { description } : {}), ...(usage ? { usage } : {}) });
    if (!checked.success) {
      const issue = checked.error.issues[0]!;
      throw virtError('invalid-arg', `invalid argument: ${issue.path.join('.')}: ${issue.message}`);
    }
    return checked.data;
  });

/** libvirt's own codes are kept (a malformed uuid is its internal error); anything unexpected is an xml-error. */
const guarded = <T>(fn: () => T): T => {
  try {
    return fn();
  } catch (e) {
    if (isVirtError(e)) throw e;
    throw xmlError(`cannot parse secret XML: ${e instanceof Error ? e.message : String(e)}`);
  }
};

/** virBufferEscapeString's escapes. */
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

/** virSecretDefFormat, line for line. */
export const formatSecretXml = (d: SecretDefinition): string => {
  const lines = [`<secret ephemeral='${d.ephemeral ? 'yes' : 'no'}' private='${d.private ? 'yes' : 'no'}'>`, `  <uuid>${d.uuid}</uuid>`];
  if (d.description !== undefined) lines.push(`  <description>${esc(d.description)}</description>`);
  if (d.usage) {
    const tag = USAGE_ELEMENT[d.usage.type];
    lines.push(`  <usage type='${d.usage.type}'>`, `    <${tag}>${esc(d.usage.id)}</${tag}>`, '  </usage>');
  }
  lines.push('</secret>');
  return `${lines.join('\n')}\n`;
};
