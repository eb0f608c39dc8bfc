import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSecretKey, SecretVault } from './secret-vault.ts';

describe('the secret vault', () => {
  const key = randomBytes(32);
  const vault = new SecretVault(key, null, null);
  const A = 'c4a7b1b2-1111-4c3e-9a9a-000000000001';
  const B = 'c4a7b1b2-1111-4c3e-9a9a-000000000002';

  it('seals a value so that only its own secret and value id open it, and the digest reveals nothing', () => {
    const value = Buffer.from('hunter2');
    const id = vault.newValueId();
    const sealed = vault.seal(A, id, value);
    expect(sealed).not.toContain('hunter2');
    expect(sealed).not.toContain(value.toString('base64'));
    const digest = vault.digest(A, id, value);
    expect(vault.open(A, id, sealed, digest).toString()).toBe('hunter2');
    // Moved onto another secret, or put back under another value id: refused.
    expect(() => vault.open(B, id, sealed, vault.digest(B, id, value))).toThrow(/does not authenticate/);
    expect(() => vault.open(A, vault.newValueId(), sealed, digest)).toThrow(/does not authenticate/);
    // Another value than the log recorded.
    expect(() => vault.open(A, id, sealed, vault.digest(A, id, Buffer.from('other')))).toThrow(/not the one the log recorded/);
    // The same value twice gives different digests (each under its own value id) and ciphertexts.
    const id2 = vault.newValueId();
    expect(vault.digest(A, id2, value)).not.toBe(digest);
    expect(vault.seal(A, id, value)).not.toBe(sealed);
    // Another key: said plainly, not a decryption failure.
    expect(() => new SecretVault(randomBytes(32), null, null).open(A, id, sealed, digest)).toThrow(/another secret key/);
    expect(() => vault.open(A, id, '{not json', digest)).toThrow(/damaged/);
  });

  it('makes its key file once (0600), reuses it, and refuses one others can read or of the wrong size', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'virtplane-key-'));
    try {
      const path = join(dir, 'sub', 'secret.key');
      const k1 = loadSecretKey(path);
      expect(k1).toHaveLength(32);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect(loadSecretKey(path).equals(k1)).toBe(true);
      expect(Buffer.from((await readFile(path, 'utf8')).trim(), 'base64').equals(k1)).toBe(true);
      await chmod(path, 0o644);
      expect(() => loadSecretKey(path)).toThrow(/is open to others \(mode 644\); make it 0600/);
      await writeFile(join(dir, 'short.key'), 'c2hvcnQ=\n', { mode: 0o600 });
      expect(() => loadSecretKey(join(dir, 'short.key'))).toThrow(/must hold 32 bytes/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
