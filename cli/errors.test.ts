import { describe, expect, it } from 'vitest';
import { virtError } from '../contracts/errors.ts';
import { errorLines, failing, libvirtMessage } from './errors.ts';

describe("virsh's error lines", () => {
  it("prefix libvirt's message with its error number's text, once", () => {
    expect(libvirtMessage('operation-invalid', 'domain is not running')).toBe('Requested operation is not valid: domain is not running');
    expect(libvirtMessage('no-domain', "Domain not found: no domain with matching name 'x'")).toBe("Domain not found: no domain with matching name 'x'");
    expect(libvirtMessage('conflict', 'busy')).toBe('busy');
  });

  it("put virsh's headline first, and say 'failed to get domain' for a domain that is not there", async () => {
    const failed = await failing("Failed to start domain 'x'", 'x', () => Promise.reject(virtError('internal-error', "domain 'x' not running"))).catch((e: unknown) => e);
    expect(errorLines(failed)).toEqual(["error: Failed to start domain 'x'", "error: internal error: domain 'x' not running [internal-error]"]);
    const missing = await failing("Failed to start domain 'x'", 'x', () => Promise.reject(virtError('no-domain', 'Domain not found'))).catch((e: unknown) => e);
    expect(errorLines(missing)).toEqual(["error: failed to get domain 'x' [no-domain]"]);
    expect(errorLines(new Error('plain'))).toEqual(['error: plain']);
  });
});
