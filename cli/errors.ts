import { isVirtError, type VirtErrorBody } from '../contracts/errors.ts';
import { ConfigError } from '../platform/config.ts';
import { isNoResponders, NatsUnavailable } from '../platform/nats.ts';

/** A mistake in how the command was called: exit status 2. */
export class UsageError extends Error {}

/** A command that has said what it had to and leaves with this status (`status`: 3 when stopped). */
export class Exit extends Error {
  constructor(
    readonly code: number,
    message = '',
  ) {
    super(message);
  }
}

/** Exit statuses, as virsh and the README give them. */
export const EXIT = { ok: 0, error: 1, usage: 2 } as const;

/**
 * One line for any failure, with its libvirt-style code and exit status: the user never sees a stack
 * or a transport's raw wording, and a bad setting or call is told apart (2) from a failure (1).
 */
export const describeFailure = (e: unknown): { body: VirtErrorBody; exit: number; coded: boolean } => {
  if (isVirtError(e)) return { body: e.toBody(), exit: EXIT.error, coded: true };
  if (e instanceof UsageError || e instanceof ConfigError) return { body: { code: 'invalid-arg', message: e.message }, exit: EXIT.usage, coded: false };
  const errno = e as NodeJS.ErrnoException;
  if (typeof errno?.code === 'string' && errno.syscall && typeof errno.path === 'string') {
    const why: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'not a directory' };
    return { body: { code: 'invalid-arg', message: `cannot read ${errno.path}: ${why[errno.code] ?? errno.code}` }, exit: EXIT.usage, coded: false };
  }
  if (e instanceof NatsUnavailable) return { body: { code: 'operation-failed', message: e.message }, exit: EXIT.error, coded: false };
  if (isNoResponders(e)) {
    return { body: { code: 'operation-failed', message: 'no service answers: is virtplane running? (`virtplane status`)' }, exit: EXIT.error, coded: true };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { body: { code: 'internal-error', message }, exit: EXIT.error, coded: false };
};
