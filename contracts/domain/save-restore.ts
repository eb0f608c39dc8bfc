import { z } from 'zod';
import type { DomainCommand } from './commands.ts';
import type { DomainAggregate } from './decider.ts';
import type { DomainEventBody } from './events.ts';
import { isActive } from './state.ts';
import { virtError } from '../errors.ts';
import { requireLiveClaim } from '../name-claim.ts';
import { formatDomainXml } from '../xml/domain.ts';
import { defineToStart } from './define-to-start.ts';

/**
 * virsh save and restore: a running guest's state goes into a file on its host and the domain is
 * shut off (saved); restore reads the file on that host, recreates the domain from the definition
 * the image records, and starts it from the saved state (testDomainSaveFlags,
 * testDomainRestoreFlags, qemuDomainSaveFlags, qemuDomainRestoreFlags).
 *
 * A path names a file on a host, chosen by whoever sends the command. It is checked twice: here, so
 * that nothing but a plain absolute path ever reaches the log, and by the host agent, which writes
 * or reads only under the directories it allows (drivers/save-image.ts, SECURITY.md).
 */

export const SAVE_PATH_MAX = 4096;

/** libvirt's save and restore flags, for the test driver's "unsupported flags" message. */
export const SAVE_FLAGS = { running: 0x2, paused: 0x4 } as const;

/**
 * Absolute, normalised (no `.`/`..` segment, no doubled or trailing `/`), no control character:
 * what the path says is then what it is, before any link on the host is looked at. A bare file name
 * (no `/`) names a file in the host's first image directory: in a fleet the client seldom knows
 * where a host keeps them.
 */
export const savePathProblem = (p: string): string | undefined => {
  if (/[\u0000-\u001f\u007f]/.test(p)) return 'the path holds a control character';
  if (!p.includes('/')) return p === '.' || p === '..' || p.length > 255 ? `'${p}' is not a file name` : undefined;
  if (!p.startsWith('/')) return `'${p}' is not an absolute path: a saved image is named by its full path on the host, or by a bare file name in its image directory`;
  const segs = p.slice(1).split('/');
  if (segs.some((s) => s === '' || s === '.' || s === '..')) return `'${p}' is not a normalised path (empty, '.' or '..' segments)`;
  return undefined;
};

export const SavePath = z
  .string()
  .min(1)
  .max(SAVE_PATH_MAX)
  .superRefine((p, ctx) => {
    const problem = savePathProblem(p);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** What an image on a host holds (hostread.<host>.save-image): its definition and whether the guest ran. */
export const SaveImageRequest = z.object({ file: SavePath });
export type SaveImageRequest = z.infer<typeof SaveImageRequest>;
export const SaveImageReply = z.object({ xml: z.string(), running: z.boolean(), format: z.enum(['test', 'qemu']) });
export type SaveImageReply = z.infer<typeof SaveImageReply>;

type SaveCommand = Extract<DomainCommand, { type: 'save' }>;
type RestoreCommand = Extract<DomainCommand, { type: 'restore' }>;

/** Both drivers check only that the guest is active: a transient domain may be saved, and goes once it is. */
export const checkSave = (s: DomainAggregate): void => {
  if (!isActive(s.observed.state)) throw virtError('operation-invalid', 'domain is not running', { domain: s.name });
};

/** The test driver takes no restore flag (virCheckFlags(0)); the QEMU driver takes --running and --paused. */
export const checkRestoreFlags = (type: string, flags: { paused?: boolean; running?: boolean }): void => {
  if (flags.paused && flags.running) throw virtError('invalid-arg', "Options --running and --paused are mutually exclusive");
  if (type !== 'test') return;
  const bits = (flags.running ? SAVE_FLAGS.running : 0) | (flags.paused ? SAVE_FLAGS.paused : 0);
  // virReportInvalidArg: libvirt prints it without "invalid argument: " before it.
  if (bits) throw virtError('invalid-arg', `unsupported flags (0x${bits.toString(16)}) in function testDomainRestoreFlags`, { raw: true });
};

/**
 * restore: virDomainObjListAdd with CHECK_LIVE, then a start from the image. A domain the image's
 * definition names that runs (or is being started) is refused as libvirt refuses it; one defined
 * on another host is refused too, since the file is on this one. A domain that does not exist comes
 * back transient, as `restore` of a guest whose domain was undefined does in libvirt.
 */
export const decideRestore = (cmd: RestoreCommand, s: DomainAggregate, start: (placed: DomainAggregate) => DomainEventBody): DomainEventBody[] => {
  if (s.exists && s.name !== cmd.definition.name) {
    throw virtError('operation-failed', `domain '${s.name}' is already defined with uuid ${s.id}`);
  }
  if (s.exists && isActive(s.observed.state)) throw virtError('operation-invalid', `domain '${s.name}' is already active`, { domain: s.name });
  if (s.exists && s.pending) throw virtError('operation-invalid', `domain '${s.name}' is already being started`, { domain: s.name });
  if (s.exists && s.hostLost) throw virtError('operation-invalid', `domain '${s.name}' is on host '${s.hostId}', which is lost`, { hostId: s.hostId });
  if (s.exists && s.hostId !== cmd.hostId) {
    throw virtError('operation-invalid', `domain '${s.name}' belongs to host '${s.hostId}': its saved image on host '${cmd.hostId}' cannot be restored there`, { hostId: s.hostId });
  }
  requireLiveClaim(s, cmd.claimSeq, 'domain', cmd.definition.name);
  // A defined domain keeps its definition when the image holds the same one: restore is no redefinition.
  // Compared as libvirt XML: the image's copy went through the XML once, which the stored one may not have.
  const same = s.exists && s.definition !== null && formatDomainXml(s.definition) === formatDomainXml(cmd.definition);
  const { defined, placed } = defineToStart(s, cmd.definition, cmd.hostId);
  return [...(same ? [] : [defined]), start(placed)];
};

export type { SaveCommand };
