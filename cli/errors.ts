import { isVirtError, type ErrorCode, type VirtErrorBody } from '../contracts/errors.ts';
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

/**
 * virsh prints a failed command as two lines: what failed ("Failed to start domain 'x'") and
 * libvirt's message, which starts with the text of its error number ("Requested operation is not
 * valid: ..."). virtplane's code follows in brackets for scripts that want it.
 */

/** The text libvirt's virErrorMsg puts before each message, by virtplane's code. */
const LIBVIRT_PREFIX: Partial<Record<ErrorCode, string>> = {
  'operation-invalid': 'Requested operation is not valid',
  'operation-failed': 'operation failed',
  'internal-error': 'internal error',
  'invalid-arg': 'invalid argument',
  'xml-error': 'XML error',
  'operation-unsupported': 'Operation not supported',
  'argument-unsupported': 'argument unsupported',
  timeout: 'Timed out during operation',
  'no-domain': 'Domain not found',
  'no-domain-metadata': 'metadata not found',
  'no-network': 'Network not found',
  'no-storage-pool': 'Storage pool not found',
  'no-storage-vol': 'Storage volume not found',
  'no-secret': 'Secret not found',
  'invalid-secret': 'Invalid secret',
  'config-unsupported': 'unsupported configuration',
  'no-domain-snapshot': 'Domain snapshot not found',
};

const FLAG_CHECK = /^(unsupported flags \(0x[0-9a-f]+\) in function \w+|Flags '\w+' and '\w+' are mutually exclusive)$/;

/**
 * libvirt's message for an error: its number's text, then the detail, unless the detail already
 * starts so. `raw`: libvirt reports this one without its number's text (virReportSystemError,
 * virReportInvalidArg), which the error says with `details.raw`; so do its own flag checks
 * (virCheckFlags, VIR_EXCLUSIVE_FLAGS).
 */
export const libvirtMessage = (code: ErrorCode, message: string, raw = false): string => {
  if (code === 'invalid-arg' && FLAG_CHECK.test(message)) return message;
  const prefix = LIBVIRT_PREFIX[code];
  if (!prefix || raw || message.toLowerCase().startsWith(prefix.toLowerCase())) return message;
  return `${prefix}: ${message}`;
};

/** A command that failed, with virsh's first line ("Failed to start domain 'x'"), or none. */
export class VerbFailed extends Error {
  constructor(
    readonly headline: string | null,
    override readonly cause: unknown,
    /** virsh's own words (its checks before calling libvirt), printed instead of libvirt's message. */
    readonly display?: string,
  ) {
    super(headline ?? (cause as Error)?.message ?? String(cause));
  }
}

/**
 * Runs one verb on a domain, turning its error into virsh's lines: a domain that cannot be found is
 * virsh's one line "failed to get domain 'x'"; anything else is `headline` over libvirt's message.
 */
export const failing = async <T>(headline: string | null, domain: string | null, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof VerbFailed || !isVirtError(e)) throw e;
    if (domain !== null && e.code === 'no-domain') throw new VerbFailed(null, e, `failed to get domain '${domain}'`);
    throw new VerbFailed(headline, e);
  }
};

/** The error lines for stderr, each starting with `error: `. */
export const errorLines = (e: unknown): string[] => {
  const headline = e instanceof VerbFailed ? e.headline : null;
  const cause = e instanceof VerbFailed ? e.cause : e;
  const display = e instanceof VerbFailed ? e.display : undefined;
  let body: string;
  if (isVirtError(cause)) body = `${display ?? libvirtMessage(cause.code, cause.message, (cause.details as { raw?: unknown } | undefined)?.raw === true)} [${cause.code}]`;
  else {
    const d = describeFailure(cause);
    body = `${d.body.message}${d.coded ? ` [${d.body.code}]` : ''}`;
  }
  return [...(headline ? [`error: ${headline}`] : []), `error: ${body}`];
};

/** The error a failed verb carries, for `--json` output. */
export const causeOf = (e: unknown): unknown => (e instanceof VerbFailed ? e.cause : e);
