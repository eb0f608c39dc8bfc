import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TaskJournal } from './task-journal.ts';

const fresh = () => join(mkdtempSync(join(tmpdir(), 'journal-')), 'tasks.jsonl');

describe('task journal', () => {
  it('shows an entry only once it is written, and finds every entry again after reopening', async () => {
    const file = fresh();
    const j = new TaskJournal<{ n: number }>(file);
    const started = j.markStarted('a');
    expect(j.wasStarted('a')).toBe(false);
    await started;
    expect(j.wasStarted('a')).toBe(true);
    // Many at once share writes; each resolves once its own entry is on disk.
    await Promise.all(Array.from({ length: 500 }, (_, i) => j.markDone(`t${i}`, { n: i })));
    await j.close();
    const again = new TaskJournal<{ n: number }>(file);
    expect(again.wasStarted('a')).toBe(true);
    for (let i = 0; i < 500; i++) expect(again.outcome(`t${i}`)).toEqual({ n: i });
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(501);
  });

  it('skips a torn last line', async () => {
    const file = fresh();
    const j = new TaskJournal<string>(file);
    await j.markDone('x', 'ok');
    await j.close();
    appendFileSync(file, '{"taskId":"y","pha');
    const again = new TaskJournal<string>(file);
    expect(again.outcome('x')).toBe('ok');
    expect(again.outcome('y')).toBeUndefined();
  });

  it('compacts to the newest finished tasks and keeps writing after', async () => {
    const file = fresh();
    const j = new TaskJournal<number>(file);
    for (let round = 0; round < 9; round++) await Promise.all(Array.from({ length: 1000 }, (_, i) => j.markDone(`r${round}-${i}`, i)));
    await j.markDone('last', 7);
    await j.close();
    const again = new TaskJournal<number>(file);
    expect(again.outcome('last')).toBe(7);
    expect(again.outcome('r8-999')).toBe(999);
    expect(again.outcome('r0-0')).toBeUndefined();
    expect(readFileSync(file, 'utf8').trim().split('\n').length).toBeLessThanOrEqual(8_001);
  });

  it('rejects the waiting steps when the file cannot be written, and records nothing for them', async () => {
    const file = fresh();
    const j = new TaskJournal<string>(`${file}.good`);
    const bad = new TaskJournal<string>(file);
    // A directory where the file should be: every open fails.
    mkdirSync(file);
    await expect(bad.markStarted('z')).rejects.toThrow();
    expect(bad.wasStarted('z')).toBe(false);
    await j.markStarted('ok');
    expect(j.wasStarted('ok')).toBe(true);
  });

  it('kill -9 while writing: every entry announced as written is there after the crash', async () => {
    const file = fresh();
    const script = join(mkdtempSync(join(tmpdir(), 'journal-writer-')), 'writer.ts');
    writeFileSync(
      script,
      `import { TaskJournal } from ${JSON.stringify(resolve('services/host-agent/task-journal.ts'))};
const j = new TaskJournal<number>(${JSON.stringify(file)});
let i = 0;
const one = async (k: number) => { await j.markDone('t' + k, k); process.stdout.write('t' + k + '\\n'); };
setInterval(() => { for (let n = 0; n < 50; n++) void one(i++); }, 1);
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    await new Promise<void>((res) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.split('\n').length > 2000) res();
      });
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const announced = out.split('\n').filter((l) => /^t\d+$/.test(l));
    const again = new TaskJournal<number>(file);
    const missing = announced.filter((id) => again.outcome(id) === undefined);
    expect(announced.length).toBeGreaterThanOrEqual(2000);
    expect(missing).toEqual([]);
  });
});
