import { z } from 'zod';
import { DomainId } from './ids.ts';

/**
 * A guest's serial console between the CLI and the guest's host, over core NATS (SECURITY.md):
 *
 * - the client subscribes to `consoleOut(host, session)` and asks `consoleOpen(host, principal)`
 *   with a session id of its own choosing, so nothing the guest writes after the reply is missed;
 * - it sends typed bytes on `consoleIn(host, session)`; control messages there and on the way out
 *   carry the `Console-Control` header (`ack`, `ping`, `close`) and no header means data;
 * - the host sends at most `windowBytes` ahead of what the client acknowledged (the `Console-Offset`
 *   header of each chunk is where it ends; an `ack` names the offset reached), and stops reading the
 *   guest meanwhile, so a slow terminal slows the guest down instead of losing output;
 * - both sides send `ping` every `heartbeatMs`; a side that hears nothing for `idleMs` ends the
 *   session, so a client killed with SIGKILL does not hold the console for ever.
 */

export const ConsoleSessionId = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'a session id is 16 to 64 letters, digits, - or _');

export const ConsoleOpenRequest = z.object({
  domainId: DomainId,
  sessionId: ConsoleSessionId,
  /** libvirt's alias of the character device (serial0, console1); the domain's console by default. */
  devName: z.string().regex(/^[a-z]+[0-9]+$/).optional(),
  /** Take the console from a session that holds it (virsh console --force). */
  force: z.boolean().default(false),
});
export type ConsoleOpenRequest = z.infer<typeof ConsoleOpenRequest>;

export const ConsoleOpened = z.object({
  sessionId: ConsoleSessionId,
  /** The character device the session is attached to. */
  device: z.string(),
  heartbeatMs: z.number().int().positive(),
  idleMs: z.number().int().positive(),
  windowBytes: z.number().int().positive(),
});
export type ConsoleOpened = z.infer<typeof ConsoleOpened>;

export const CONSOLE_CONTROL_HEADER = 'Console-Control';
export const CONSOLE_OFFSET_HEADER = 'Console-Offset';
export type ConsoleControl = 'ack' | 'ping' | 'close';

/** Why the host ended a session, in the body of its `close`. */
export const ConsoleClosed = z.object({
  reason: z.enum(['closed', 'taken-over', 'guest-gone', 'idle', 'host-stopping']),
  message: z.string(),
});
export type ConsoleClosed = z.infer<typeof ConsoleClosed>;

export const CONSOLE_DEFAULTS = { heartbeatMs: 2_000, idleMs: 10_000, windowBytes: 256 * 1024 } as const;
