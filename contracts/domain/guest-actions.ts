import { z } from 'zod';
import { virtError } from '../errors.ts';
import { CommandHeader, DomainRef } from './commands.ts';
import { checkKeycodes, KeyCodeset, KeyPress, MAX_KEYS, toQnum } from './keycodes.ts';
import { isActive } from './state.ts';
import type { DomainAggregate } from './decider.ts';

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

export type GuestActionCommand = { type: 'send-key'; keys: KeyPress; timeoutMs: number } | { type: 'inject-nmi'; timeoutMs: number };

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
  if (onTest) {
    running();
    checkKeycodes(cmd.keys);
  } else {
    toQnum(cmd.keys);
    running();
  }
};
