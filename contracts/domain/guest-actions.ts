import { z } from 'zod';
import { virtError } from '../errors.ts';
import { CommandHeader, DomainRef } from './commands.ts';
import { checkKeycodes, KeyCodeset, KeyPress, MAX_KEYS, toQnum } from './keycodes.ts';
import { isActive } from './state.ts';
import type { DomainAggregate } from './decider.ts';
import type { DiskModel } from './definition.ts';

/**
 * virsh send-key and inject-nmi: things done to a running guest that change nothing the log keeps
 * about it. Each is still recorded as an intent (who asked, when, for what) and carried out by the
 * domain's host as a task, so auditors see every key pressed and every NMI sent.
 */

export const SendKeyRequest = CommandHeader.extend({
  domain: DomainRef,
  codeset: KeyCodeset.default('linux'),
  keycodes: z.array(z.number().int().nonnegative().max(0xffff)).min(1).max(MAX_KEYS, 'too many keycodes'),
  holdtimeMs: z.number().int().nonnegative().max(0xffffffff).optional(),
  timeoutSeconds: z.number().positive().max(3600).optional(),
});
export type SendKeyRequest = z.infer<typeof SendKeyRequest>;

export const InjectNmiRequest = CommandHeader.extend({ domain: DomainRef, timeoutSeconds: z.number().positive().max(3600).optional() });
export type InjectNmiRequest = z.infer<typeof InjectNmiRequest>;

/** virsh blockresize: `path` is a disk's target or source, `bytes` its new size (virsh scales the argument). */
export const BlockResizeRequest = CommandHeader.extend({
  domain: DomainRef,
  path: z.string().min(1).max(4096),
  bytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  timeoutSeconds: z.number().positive().max(3600).optional(),
});
export type BlockResizeRequest = z.infer<typeof BlockResizeRequest>;

export type GuestActionCommand =
  | { type: 'send-key'; keys: KeyPress; timeoutMs: number }
  | { type: 'inject-nmi'; timeoutMs: number }
  | { type: 'block-resize'; path: string; bytes: number; timeoutMs: number }
  | { type: 'screenshot'; screen: number; timeoutMs: number };

/** virsh screenshot: the host takes the picture into a file of its own, which the client then reads from it. */
export const ScreenshotRequest = CommandHeader.extend({
  domain: DomainRef,
  screen: z.number().int().nonnegative().max(64).default(0),
  timeoutSeconds: z.number().positive().max(3600).optional(),
});
export type ScreenshotRequest = z.infer<typeof ScreenshotRequest>;

/** A piece of a screenshot its host holds (hostread.<host>.screenshot): the task that took it, from `offset`. */
export const ScreenshotReadRequest = z.object({ taskId: z.string().regex(/^[A-Za-z0-9_-]{8,80}$/), offset: z.number().int().nonnegative() });
export type ScreenshotReadRequest = z.infer<typeof ScreenshotReadRequest>;

/** A guest's screens: its video devices, or the one a display brings when none is given (as libvirt adds it). */
const screensOf = (s: DomainAggregate): number => {
  const devices = s.definition!.devices as { videos?: unknown[]; graphics: unknown[] };
  return devices.videos?.length ?? (devices.graphics.length ? 1 : 0);
};

const sourceOf = (d: DiskModel): string | undefined => d.source?.file ?? d.source?.dev ?? d.source?.dir ?? d.source?.volume ?? d.source?.name;

/**
 * qemuDomainBlockResize's checks, in its order, against the running definition: the disk of this
 * target or source, with an image, writable. The disk's definition does not change (the image grows
 * under it); qcow2 and qed images are sized in 512-byte sectors, so the size is rounded up to one.
 */
export const resolveBlockResize = (s: DomainAggregate, path: string, bytes: number): { target: string; bytes: number } => {
  const disk = s.definition!.devices.disks.find((d) => d.target.dev === path || sourceOf(d) === path);
  if (!disk) throw virtError('invalid-arg', `disk '${path}' was not found in the domain config`);
  if (sourceOf(disk) === undefined || disk.readonly) throw virtError('operation-unsupported', `can't resize empty or readonly disk '${disk.target.dev}'`);
  const format = disk.driver?.type;
  return { target: disk.target.dev, bytes: format === 'qcow2' || format === 'qed' ? Math.ceil(bytes / 512) * 512 : bytes };
};

/**
 * libvirt's checks in its drivers' order: qemuDomainSendKey translates every key to qemu's numbers
 * before it looks at the domain; testDomainSendKey looks at the domain first. Nothing is recorded
 * for a request either refuses.
 */
export const checkGuestAction = (cmd: GuestActionCommand, s: DomainAggregate, onTest: boolean): void => {
  const running = () => {
    if (!isActive(s.observed.state)) throw virtError('operation-invalid', 'domain is not running', { domain: s.name });
  };
  if (cmd.type === 'inject-nmi') return running();
  if (cmd.type === 'screenshot') {
    // The test driver draws its picture for any domain; qemuDomainScreenshot's checks otherwise.
    if (onTest) return;
    running();
    const screens = screensOf(s);
    if (screens === 0) throw virtError('operation-invalid', 'no screens to take screenshot from', { domain: s.name });
    if (cmd.screen >= screens) throw virtError('invalid-arg', `no such screen ID: ${cmd.screen}`);
    return;
  }
  if (cmd.type === 'block-resize') {
    // The test driver has no virDomainBlockResize.
    if (onTest) throw virtError('operation-unsupported', 'this function is not supported by the connection driver: virDomainBlockResize', { raw: true });
    return running();
  }
  if (onTest) {
    running();
    checkKeycodes(cmd.keys);
  } else {
    toQnum(cmd.keys);
    running();
  }
};
