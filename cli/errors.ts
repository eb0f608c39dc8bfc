import { isVirtError, type ErrorCode } from '../contracts/errors.ts';

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
  'no-network': 'Network not found',
  'no-storage-pool': 'Storage pool not found',
  'no-storage-vol': 'Storage volume not found',
};

/** libvirt's message for an error: its number's text, then the detail, unless the detail already starts so. */
export const libvirtMessage = (code: ErrorCode, message: string): string => {
  const prefix = LIBVIRT_PREFIX[code];
  if (!prefix || message.toLowerCase().startsWith(prefix.toLowerCase())) return message;
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
  const body = isVirtError(cause) ? `${display ?? libvirtMessage(cause.code, cause.message)} [${cause.code}]` : (cause as Error).message;
  return [...(headline ? [`error: ${headline}`] : []), `error: ${body}`];
};

/** The error a failed verb carries, for `--json` output. */
export const causeOf = (e: unknown): unknown => (e instanceof VerbFailed ? e.cause : e);
