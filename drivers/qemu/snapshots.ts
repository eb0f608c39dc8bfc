import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';

const run = promisify(execFile);

/**
 * Internal qcow2 snapshots, as libvirt's QEMU driver takes them: a running guest's with the
 * monitor's savevm/loadvm/delvm (disks and memory in one), a shut off guest's with qemu-img on each
 * disk (disks only). Every step first asks what the images already hold, so a step repeated after
 * the agent was killed finds its work done rather than doing it twice.
 */

/** The monitor's human commands; each answers text, empty on success. */
export type Hmp = (command: string) => Promise<string>;

/** The disks a snapshot covers: libvirt takes internal snapshots of writable qcow2 file disks. */
export const snapshotDisks = (def: DomainDefinition): string[] => {
  const disks = def.devices.disks.filter((d) => d.device === 'disk' && !d.readonly);
  for (const d of disks) {
    const type = d.driver?.type ?? 'raw';
    if (type !== 'qcow2' || !d.source?.file) {
      // qemuSnapshotPrepareDiskInternal's refusal.
      throw new VirtError('operation-unsupported', `internal snapshot for disk ${d.target.dev} unsupported for storage type ${d.source?.file ? type : 'network'}`);
    }
  }
  return disks.map((d) => d.source!.file!);
};

/** Tags in `info snapshots` or `qemu-img snapshot -l`: the second column of each row under the first header. */
export const snapshotTags = (listing: string): string[] => {
  const lines = listing.split('\n');
  const header = lines.findIndex((l) => /^\s*ID\s+TAG\b/.test(l));
  if (header < 0) return [];
  // The first table is the snapshots every disk holds (the monitor shows their ID as "--"); a later
  // one lists partial snapshots, which cannot be loaded.
  const rows: string[] = [];
  for (const l of lines.slice(header + 1)) {
    const cols = l.trim().split(/\s+/);
    if (l.trim() === '' || cols.length < 2) break;
    rows.push(cols[1]!);
  }
  return rows;
};

const hmpChecked = async (hmp: Hmp, command: string): Promise<void> => {
  const out = (await hmp(command)).trim();
  // The human monitor reports failure in its text, not as a QMP error.
  if (/^Error\b|\berror\b/i.test(out)) throw new VirtError('operation-failed', `internal error: ${command.split(' ')[0]}: ${out.replace(/^Error:\s*/, '')}`);
};

export const liveTags = async (hmp: Hmp): Promise<string[]> => snapshotTags(await hmp('info snapshots'));

/** savevm, unless the images already hold the tag (a repeated task): savevm would overwrite it with a later state. */
export const liveCreate = async (hmp: Hmp, name: string): Promise<void> => {
  if ((await liveTags(hmp)).includes(name)) return;
  await hmpChecked(hmp, `savevm ${name}`);
};

export const liveRevert = async (hmp: Hmp, name: string): Promise<void> => {
  if (!(await liveTags(hmp)).includes(name)) throw new VirtError('operation-failed', `internal error: snapshot '${name}' is not in the domain's disk images`);
  await hmpChecked(hmp, `loadvm ${name}`);
};

export const liveDelete = async (hmp: Hmp, names: readonly string[]): Promise<void> => {
  const held = new Set(await liveTags(hmp));
  for (const n of names) if (held.has(n)) await hmpChecked(hmp, `delvm ${n}`);
};

const qemuImg = async (args: string[], signal?: AbortSignal): Promise<string> => {
  try {
    const { stdout } = await run('qemu-img', args, { timeout: 300_000, ...(signal ? { signal } : {}) });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new VirtError('operation-failed', `internal error: qemu-img ${args[0]} ${args[1] ?? ''}: ${(err.stderr || err.message).trim()}`);
  }
};

export const offlineTags = async (file: string, signal?: AbortSignal): Promise<string[]> => snapshotTags(await qemuImg(['snapshot', '-l', '-U', file], signal));

/** qemu-img snapshot -c on every disk that does not hold the tag yet. */
export const offlineCreate = async (files: readonly string[], name: string, signal?: AbortSignal): Promise<void> => {
  for (const f of files) if (!(await offlineTags(f, signal)).includes(name)) await qemuImg(['snapshot', '-c', name, f], signal);
};

export const offlineRevert = async (files: readonly string[], name: string, signal?: AbortSignal): Promise<void> => {
  for (const f of files) {
    if (!(await offlineTags(f, signal)).includes(name)) throw new VirtError('operation-failed', `internal error: snapshot '${name}' is not in ${f}`);
  }
  for (const f of files) await qemuImg(['snapshot', '-a', name, f], signal);
};

export const offlineDelete = async (files: readonly string[], names: readonly string[], signal?: AbortSignal): Promise<void> => {
  for (const f of files) {
    const held = new Set(await offlineTags(f, signal));
    for (const n of names) if (held.has(n)) await qemuImg(['snapshot', '-d', n, f], signal);
  }
};
