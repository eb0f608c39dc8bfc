import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { checkKeycodes, parseKeycode, toQnum, type KeyCodeset } from '../contracts/domain/keycodes.ts';
import { hasVirsh } from './fixtures/cli.ts';

/** Feeds virsh (test:///default, whose send-key checks every key against its codeset) one session of commands. */
const virshSession = (lines: string[]): Promise<string> =>
  new Promise((resolve, reject) => {
    const p = spawn('virsh', ['-q', '-c', 'test:///default'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', () => resolve(out));
    p.stdin.end(lines.join('\n') + '\n');
  });

const accepts = (codeset: KeyCodeset, code: number): boolean => {
  try {
    checkKeycodes({ codeset, keycodes: [code] });
    return true;
  } catch {
    return false;
  }
};

describe('keycodes as libvirt reads them', () => {
  it.skipIf(!hasVirsh)('every keycode 0..1023 (and the 0xe0 prefixes) is valid or not in each codeset exactly as virsh says', { timeout: 120_000 }, async () => {
    const codes = [...Array.from({ length: 1024 }, (_, i) => i), ...Array.from({ length: 256 }, (_, i) => 0xe000 + i)];
    for (const codeset of ['linux', 'xt', 'atset1', 'xt_kbd', 'qnum'] as const) {
      const out = await virshSession(codes.map((c) => `send-key test --codeset ${codeset} ${c}`));
      const refused = new Set([...out.matchAll(/invalid keycode (\d+) of \w+ codeset/g)].map((m) => Number(m[1])));
      const mismatched = codes.filter((c) => accepts(codeset, c) === refused.has(c));
      expect([codeset, mismatched]).toEqual([codeset, []]);
    }
  });

  it('names and numbers as virsh reads them, and qemu numbers as qemuDomainSendKey translates', () => {
    expect(parseKeycode('linux', 'KEY_A')).toBe(30);
    expect(parseKeycode('linux', '0x1e')).toBe(30);
    expect(parseKeycode('linux', '036')).toBe(30);
    expect(parseKeycode('linux', 'BTN_LEFT')).toBe(0x110);
    expect(() => parseKeycode('xt', 'KEY_A')).toThrow("invalid keycode: 'KEY_A'");
    expect(() => parseKeycode('linux', '-1')).toThrow("invalid keycode: '-1'");
    expect(() => parseKeycode('linux', '70000')).toThrow("invalid keycode: '70000'");
    // Plain keys are the same number in every set; extended ones get 0x80 in qemu's numbering.
    expect(toQnum({ codeset: 'linux', keycodes: [30, 103, 125] })).toEqual([0x1e, 0xc8, 0xdb]);
    expect(toQnum({ codeset: 'xt_kbd', keycodes: [0x148] })).toEqual([0xc8]);
    expect(toQnum({ codeset: 'qnum', keycodes: [0xc8] })).toEqual([0xc8]);
    // A linux key with no scancode cannot reach a PS/2 keyboard: libvirt's words.
    expect(() => toQnum({ codeset: 'linux', keycodes: [0x110] })).toThrow('cannot translate keycode 272 of linux codeset to qnum keycode');
    expect(() => toQnum({ codeset: 'usb', keycodes: [4] })).toThrow('the usb codeset is not supported');
  });
});
