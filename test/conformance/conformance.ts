import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isVirtError } from '../../contracts/errors.ts';
import { stableKey } from '../../contracts/xml/codec.ts';
import { formatAnyXml, parseAnyXml, type AnyDefinition, type ParseOptions } from '../../contracts/xml/index.ts';
import { parseDocument } from '../../contracts/xml/document.ts';
import { isElement, type XElement } from '../../contracts/xml/tree.ts';
import { KNOWN_INVALID } from './known-invalid.ts';
import { losslessProblems } from './lossless.ts';

/**
 * Conformance of the XML layer against libvirt's and virt-manager's own documents.
 *
 * A document libvirt accepts must parse; formatting its model must give back the stored document;
 * parsing that document again must give an equal model and the same text; and the stored document
 * must keep every element, attribute and text of the input. A document libvirt rejects (a `.err`
 * beside it, or listed in known-invalid.ts) must be refused with an xml-error that names the same
 * thing libvirt's message names. For domains, every device of the document must also be in the model,
 * since drivers read the model.
 */

export const FOLDERS = ['libvirt/domain-xml', 'libvirt/network', 'libvirt/storage', 'virt-manager'] as const;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the corpus is: VIRTPLANE_CONFORMANCE_DIR, or `../shared/conformance` beside the clone. */
export const conformanceDir = (): string => process.env.VIRTPLANE_CONFORMANCE_DIR || path.resolve(repoRoot, '..', 'shared', 'conformance');

export interface CaseResult {
  file: string;
  expected: 'accept' | 'reject';
  ok: boolean;
  detail: string;
}

export interface FolderResult {
  folder: string;
  manifest: string;
  pass: number;
  total: number;
  cases: CaseResult[];
}

/** Deterministic defaults so repeated runs produce identical documents. */
const deterministic = (): ParseOptions => {
  let n = 0;
  return {
    uuid: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    randomBytes: (k) => Uint8Array.from({ length: k }, (_, i) => (n * 31 + i * 7) & 0xff),
  };
};


const withoutXml = (d: { xml?: string }) => {
  const { xml: _xml, ...rest } = d;
  return rest;
};

function xmlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...xmlFiles(p));
    else if (name.endsWith('.xml')) out.push(p);
  }
  return out;
}

/** libvirt's error for a test case: `<case>.<variant>.err` or `<case>.err` next to the input. */
function errFileFor(file: string): string | undefined {
  const dir = path.dirname(file);
  const base = path.basename(file).replace(/\.xml$/, '').replace(/\.x86_64-latest$/, '');
  const hit = readdirSync(dir).find((n) => n.endsWith('.err') && (n === `${base}.err` || n.startsWith(`${base}.`)));
  return hit ? path.join(dir, hit) : undefined;
}

/** Does our message name what libvirt's names? Quoted values must reappear; otherwise the message itself. */
export function matchesLibvirtError(ours: string, libvirtText: string): boolean {
  const text = libvirtText.trim();
  // libxml2 syntax errors are reported as FILE:LINE: message
  if (/^\S+:\d+: /.test(text)) return ours.includes('not well-formed');
  const firstLine = text.split('\n')[0]!;
  const quoted = [...firstLine.matchAll(/'([^'\n]+)'/g)].map((m) => m[1]!);
  if (quoted.length > 0) return quoted.every((q) => ours.includes(`'${q}'`));
  const core = firstLine.replace(/^[A-Za-z ]+: /, '');
  return ours.includes(core);
}

/** Model list -> the device element it comes from. */
const DEVICE_ELEMENTS: Record<string, string> = {
  disks: 'disk',
  interfaces: 'interface',
  graphics: 'graphics',
  serials: 'serial',
  consoles: 'console',
  controllers: 'controller',
  filesystems: 'filesystem',
  channels: 'channel',
  inputs: 'input',
  videos: 'video',
  sounds: 'sound',
  hostdevs: 'hostdev',
  rngs: 'rng',
  watchdogs: 'watchdog',
  tpms: 'tpm',
};

/** Drivers read the model, not the XML: every device of the document must be in it. */
function modelProblems(text: string, parsed: AnyDefinition): string | undefined {
  if (parsed.kind !== 'domain') return undefined;
  const root = parseDocument(text);
  const devices = root.children.find((c): c is XElement => isElement(c) && c.name === 'devices');
  const inDoc = (name: string) => (devices ? devices.children.filter((c) => isElement(c) && c.name === name).length : 0);
  const d = parsed.definition;
  for (const [list, el] of Object.entries(DEVICE_ELEMENTS)) {
    const got = ((d.devices as Record<string, unknown>)[list] as unknown[] | undefined)?.length ?? 0;
    if (got !== inDoc(el)) return `model has ${got} ${list} for ${inDoc(el)} <${el}> elements`;
  }
  if (inDoc('memballoon') !== (d.devices.memballoon ? 1 : 0)) return 'memballoon missing from the model';
  const nameEl = root.children.find((c): c is XElement => isElement(c) && c.name === 'name');
  if (nameEl && d.name !== nameEl.children.join('')) return `model name '${d.name}' differs from the document's`;
  return undefined;
}

function checkAccepted(text: string): string | undefined {
  const first = parseAnyXml(text, deterministic());
  const modelProblem = modelProblems(text, first);
  if (modelProblem) return modelProblem;
  const stored = first.definition.xml!;
  const formatted = formatAnyXml(first);
  if (formatted !== stored) return 'formatting the parsed model does not give back the stored document';
  const again = parseAnyXml(stored, {
    uuid: () => {
      throw new Error('the stored document lacks a uuid');
    },
  });
  if (again.kind !== first.kind) return `re-parse gave a ${again.kind}`;
  if (stableKey(withoutXml(again.definition)) !== stableKey(withoutXml(first.definition))) return 'parse -> format -> parse changed the model';
  if (again.definition.xml !== stored) return 'the stored document is not a fixed point of parse';
  const problems = losslessProblems(text, stored);
  if (problems.length) return `not lossless: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`;
  return undefined;
}

function runCase(root: string, file: string): CaseResult {
  const rel = path.relative(root, file).split(path.sep).join('/');
  const text = readFileSync(file, 'utf8');
  const errFile = errFileFor(file);
  const known = KNOWN_INVALID[rel];
  const expected: CaseResult['expected'] = errFile || known ? 'reject' : 'accept';
  try {
    if (expected === 'accept') {
      const problem = checkAccepted(text);
      return { file: rel, expected, ok: problem === undefined, detail: problem ?? 'ok' };
    }
    const got = parseAnyXml(text, deterministic());
    return { file: rel, expected, ok: false, detail: `accepted a document libvirt rejects (parsed as ${got.kind})` };
  } catch (e) {
    if (!isVirtError(e) || e.code !== 'xml-error') {
      return { file: rel, expected, ok: false, detail: `threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}` };
    }
    if (expected === 'accept') return { file: rel, expected, ok: false, detail: `rejected: ${e.message}` };
    const libvirt = errFile ? readFileSync(errFile, 'utf8') : known!.expect;
    const ok = errFile ? matchesLibvirtError(e.message, libvirt) : e.message.includes(known!.expect);
    return {
      file: rel,
      expected,
      ok,
      detail: ok ? `rejected: ${e.message}` : `rejected, but the message does not name what libvirt's does: ours "${e.message}", libvirt "${libvirt.trim().split('\n')[0]}"`,
    };
  }
}

function manifestTitle(dir: string, root: string): string {
  for (let d = dir; d.startsWith(root); d = path.dirname(d)) {
    const m = path.join(d, 'MANIFEST.md');
    if (existsSync(m)) return readFileSync(m, 'utf8').split('\n')[0]!.replace(/^#\s*/, '');
    if (d === root) break;
  }
  return '(no MANIFEST.md)';
}

/** Runs every folder; a folder with sub-folders (virt-manager) is reported per sub-folder. */
export function runConformance(root = conformanceDir()): FolderResult[] {
  if (!existsSync(root)) throw new Error(`conformance corpus not found at ${root} (set VIRTPLANE_CONFORMANCE_DIR)`);
  const results: FolderResult[] = [];
  for (const folder of FOLDERS) {
    const dir = path.join(root, folder);
    if (!existsSync(dir)) throw new Error(`conformance folder missing: ${dir}`);
    const subdirs = readdirSync(dir).filter((n) => statSync(path.join(dir, n)).isDirectory() && folder === 'virt-manager');
    const groups = subdirs.length > 0 ? subdirs.map((n) => `${folder}/${n}`) : [folder];
    for (const group of groups) {
      const gdir = path.join(root, group);
      const cases = xmlFiles(gdir).map((f) => runCase(root, f));
      results.push({
        folder: group,
        manifest: manifestTitle(gdir, root),
        pass: cases.filter((c) => c.ok).length,
        total: cases.length,
        cases,
      });
    }
  }
  return results;
}
