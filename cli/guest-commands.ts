import type { Command } from 'commander';
import { MAX_KEYS, parseCodeset, parseKeycode } from '../contracts/domain/keycodes.ts';
import { failing, UsageError } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';
import { parseBytes } from './resource-commands.ts';

/** virsh's own checks, before anything is asked: one error line, no "Failed to" over it. */
const vshError = (message: string) => new UsageError(message);

/** vshCommandOptUInt's words for a number it cannot take. */
const uint = (name: string, v: string): number => {
  if (!/^(0x[0-9a-f]+|[0-9]+)$/i.test(v) || Number(v) > 0xffffffff) throw vshError(`Numeric value '${v}' for <${name}> option is malformed or out of range`);
  return Number(v);
};

/** virsh send-key, inject-nmi and blockresize: recorded in the log, then done by the domain's host; like virsh, silent when they work. */
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
      const r = await failing(null, domain, () =>
        h.withClient(async (c) => {
          const accepted = await c.sendKey(domain, { codeset, keycodes, ...(holdtimeMs ? { holdtimeMs } : {}) }, { timeoutSeconds });
          return { accepted, view: await c.outcome(accepted, timeoutSeconds * 1000) };
        }),
      );
      h.out().result('', r);
    });

  program
    .command('inject-nmi')
    .description('inject a non-maskable interrupt into the guest')
    .argument('<domain>', 'name or uuid')
    .option('--timeout <seconds>', 'deadline for the host to send it', '60')
    .action(async (domain: string, o: { timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      const r = await failing(null, domain, () =>
        h.withClient(async (c) => {
          const accepted = await c.injectNmi(domain, { timeoutSeconds });
          return { accepted, view: await c.outcome(accepted, timeoutSeconds * 1000) };
        }),
      );
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
      const r = await failing(`Failed to resize block device '${path}'`, domain, () =>
        h.withClient(async (c) => {
          const accepted = await c.blockResize(domain, path, bytes, { timeoutSeconds });
          return { accepted, view: await c.outcome(accepted, timeoutSeconds * 1000) };
        }),
      );
      h.out().result(`Block device '${path}' is resized`, r);
    });
};
