import { describe, expect, it } from 'vitest';
import { createUser } from '@nats-io/nkeys';
import { nkeyAuthenticator } from '@nats-io/transport-node';
import { nativeNkeyAuthenticator } from './nkey-auth.ts';

describe('nativeNkeyAuthenticator', () => {
  it('answers a challenge with the same public key and signature as nats.js', () => {
    for (let i = 0; i < 5; i++) {
      const seed = createUser().getSeed();
      const nonce = `nonce-${i}-${Math.random().toString(36).slice(2)}`;
      const ours = nativeNkeyAuthenticator(seed)(nonce);
      const theirs = nkeyAuthenticator(seed)(nonce);
      expect(ours).toEqual(theirs);
      expect((ours as { nkey: string }).nkey).toMatch(/^U[A-Z2-7]{55}$/);
    }
  });

  it('answers again on reconnect, with the signature of the new nonce', () => {
    const seed = createUser().getSeed();
    const auth = nativeNkeyAuthenticator(seed);
    const a = auth('first') as { sig: string };
    const b = auth('second') as { sig: string };
    expect(a.sig).not.toBe(b.sig);
    expect(b).toEqual(nkeyAuthenticator(seed)('second'));
  });

  it('refuses a seed that is not one', () => {
    expect(() => nativeNkeyAuthenticator(new TextEncoder().encode('SUNOTASEED'))).toThrow();
  });
});
