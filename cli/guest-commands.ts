import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { MAX_KEYS, parseCodeset, parseKeycode } from '../contracts/domain/keycodes.ts';
import { failing, UsageError } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';
import { hostOp } from './host-op.ts';
import { parseBytes } from './resource-commands.ts';

/** virsh's own checks, before anything is asked: one error line, no "Failed to" over it. */
const vshError = (message: string) => new UsageError(message);

/** vshCommandOptUInt's words for a number it cannot take. */
const uint = (name: string, v: string): number => {
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(v) || Number(v) > 0xffffffff) throw vshError(`Numeric value '${v}' for <${name}> option is malformed or out of range`);
  return Number(v);
};

/** virsh send-key, inject-nmi, blockresize and screenshot: recorded in the log, then done by the domain's host; like virsh, silent when they work. */
export const registerGuestCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('send-key')
    .description('send keycodes to the guest (pressed together, then released)')
    .argument('<domain>', 'name or uuid')
    .argument('<keycode...>', 'key code names or numbers of the codeset (at most 16)')
    .option('--codeset <codeset>', 'linux (default), xt, atset1, xt_kbd or qnum')
    .option('--holdtime <ms>', 'how long the keys are held, in ms')
    .option('--timeout <seconds>', 'deadline for the host to press them', '60')
    .action(async (domain: string, keyArgs: string[], o: { codeset?: string; holdtime?: string; timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      // vshKeyCodeGetInt and cmdSendKey, in virsh's order.
      let codeset;
      try {
        codeset = parseCodeset(o.codeset ?? 'linux');
      } catch (e) {
        throw vshError((e as Error).message);
      }
      const holdtimeMs = o.holdtime !== undefined ? uint('holdtime', o.holdtime) : undefined;
      const keycodes: number[] = [];
      for (const k of keyArgs) {
        if (keycodes.length === MAX_KEYS) throw vshError('too many keycodes');
        try {
          keycodes.push(parseKeycode(codeset, k));
        } catch (e) {
          throw vshError((e as Error).message);
        }
      }
      const r = await hostOp(h, domain, null, timeoutSeconds, (c, t) => c.sendKey(domain, { codeset, keycodes, ...(holdtimeMs ? { holdtimeMs } : {}) }, { timeoutSeconds: t }));
      h.out().result('', r);
    });

  program
    .command('inject-nmi')
    .description('inject a non-maskable interrupt into the guest')
    .argument('<domain>', 'name or uuid')
    .option('--timeout <seconds>', 'deadline for the host to send it', '60')
    .action(async (domain: string, o: { timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      const r = await hostOp(h, domain, null, timeoutSeconds, (c, t) => c.injectNmi(domain, { timeoutSeconds: t }));
      h.out().result('', r);
    });

  program
    .command('blockresize')
    .description("resize a running guest's disk image (its target or source path); the guest sees the new capacity")
    .argument('<domain>', 'name or uuid')
    .argument('<path>', 'the disk: its target (vda) or its source file')
    .argument('<size>', 'new size: KiB when bare, or with a suffix (B, K, M, G, T; KB, MB, ... in powers of 1000)')
    .option('--timeout <seconds>', 'deadline for the host to resize it', '60')
    .action(async (domain: string, path: string, size: string, o: { timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      const bytes = parseBytes(size);
      if (bytes === undefined) throw h.usageError(`Scaled numeric value '${size}' for <size> option is malformed or out of range`);
      const r = await hostOp(h, domain, `Failed to resize block device '${path}'`, timeoutSeconds, (c, t) => c.blockResize(domain, path, bytes, { timeoutSeconds: t }));
      h.out().result(`Block device '${path}' is resized`, r);
    });

  program
    .command('screenshot')
    .description("take a picture of the guest's screen, saved here (PPM from qemu)")
    .argument('<domain>', 'name or uuid')
    .argument('[file]', 'where to save it (default: <domain>-<date>.<ext>)')
    .option('--screen <number>', 'which screen (video device) of the guest', '0')
    .option('--timeout <seconds>', 'deadline for the host to take it', '60')
    .action(async (domain: string, file: string | undefined, o: { screen: string; timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      const screen = uint('screen', o.screen);
      const r = await failing(`could not take a screenshot of ${domain}`, domain, () =>
        h.withClient(async (c) => {
          const accepted = await c.screenshot(domain, screen, { timeoutSeconds });
          const view = await c.outcome(accepted, timeoutSeconds * 1000);
          return { accepted, view, image: await c.screenshotBytes(view.hostId, accepted.taskId!) };
        }),
      );
      const mime = mimeOf(r.image);
      // vshGenFileName: the domain's name, the local time, and the type's extension.
      const target = file ?? `${r.accepted.name}-${localStamp(new Date())}.${mime === 'image/png' ? 'png' : 'ppm'}`;
      await writeFile(target, r.image);
      h.out().result(`Screenshot saved to ${target}, with type of ${mime}`, { file: target, mime, bytes: r.image.length, taskId: r.accepted.taskId });
    });
};

/** What the picture is, by its first bytes, as libvirt names the type it streams. */
const mimeOf = (b: Buffer): string => (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) ? 'image/png' : 'image/x-portable-pixmap');

/** strftime's %Y-%m-%d-%H:%M:%S in local time. */
const localStamp = (d: Date): string => {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
};
