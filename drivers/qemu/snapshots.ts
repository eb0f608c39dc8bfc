import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import { isMarked, mark, type TaskMarker } from './task-markers.ts';

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

/**
 * savevm. A tag the images already hold is this task's snapshot only when the task's marker says it
 * began before (a repeated task: savevm again would overwrite it with a later state); otherwise it is
 * what an abandoned task left (one that timed out, say), and a snapshot recorded on it would hold an
 * older state than asked for, so it goes first. The marker is written after that and before savevm.
 */
export const liveCreate = async (hmp: Hmp, name: string, marker: TaskMarker): Promise<void> => {
  const held = (await liveTags(hmp)).includes(name);
  if (held && isMarked(marker)) return;
  if (held) await hmpChecked(hmp, `delvm ${name}`);
  await mark(marker);
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

/** qemu-img snapshot -c on every disk that does not hold the tag yet, with stale tags taken away first as liveCreate does. */
export const offlineCreate = async (files: readonly string[], name: string, marker: TaskMarker, signal?: AbortSignal): Promise<void> => {
  if (!isMarked(marker)) {
    for (const f of files) if ((await offlineTags(f, signal)).includes(name)) await qemuImg(['snapshot', '-d', name, f], signal);
    await mark(marker);
  }
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
