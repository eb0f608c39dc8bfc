import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './config.ts';

/** Logs as a service writes them: in a process of its own, read back from its stderr. */
const run = (env: Record<string, string>): string[] => {
  const script = `
    import { createLogger } from ${JSON.stringify(join(PROJECT_ROOT, 'platform/log.ts'))};
    const log = createLogger('command');
    log.info('command service ready', { seq: 7 });
    log.warn('slow', { ms: 12, error: 'timeout' });
    log.child('storage').error('failed', { pool: { name: 'images' } });
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, VIRTPLANE_LOG_LEVEL: '', VIRTPLANE_LOG_FORMAT: '', ...env },
    encoding: 'utf8',
  });
  expect(r.status).toBe(0);
  expect(r.stdout).toBe('');
  return r.stderr.split('\n').filter(Boolean);
};

describe('logging', () => {
  it('writes one JSON object per line with the level, time, component, fields and message', () => {
    const lines = run({});
    expect(lines).toHaveLength(3);
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records[0]).toMatchObject({ level: 'info', component: 'command', seq: 7, msg: 'command service ready' });
    expect(records[1]).toMatchObject({ level: 'warn', component: 'command', ms: 12, error: 'timeout', msg: 'slow' });
    expect(records[2]).toMatchObject({ level: 'error', component: 'command.storage', pool: { name: 'images' }, msg: 'failed' });
    for (const r of records) expect(new Date(String(r.t)).toISOString()).toBe(r.t);
    // What readiness and the tests look for in a service's output.
    expect(lines[0]).toContain(' ready"');
    // The component is bound once, even on a child.
    expect(lines[2]!.match(/"component"/g)).toHaveLength(1);
  });

  it('drops what is below VIRTPLANE_LOG_LEVEL', () => {
    expect(run({ VIRTPLANE_LOG_LEVEL: 'warn' }).map((l) => JSON.parse(l).level)).toEqual(['warn', 'error']);
    expect(run({ VIRTPLANE_LOG_LEVEL: 'error' }).map((l) => JSON.parse(l).msg)).toEqual(['failed']);
    expect(run({ VIRTPLANE_LOG_LEVEL: 'silent' })).toEqual([]);
  });

  it('prints readable lines in pretty mode, with the fields kept', () => {
    const lines = run({ VIRTPLANE_LOG_FORMAT: 'pretty' });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: command: command service ready \{"seq":7\}$/);
    expect(lines[1]).toMatch(/WARN: command: slow \{"ms":12,"error":"timeout"\}$/);
    expect(lines[2]).toMatch(/ERROR: command\.storage: failed \{"pool":\{"name":"images"\}\}$/);
  });

  it('writes JSON when stderr is not a terminal and no format is set', () => {
    // spawnSync pipes stderr, as a supervisor or a log collector does.
    expect(() => run({}).map((l) => JSON.parse(l))).not.toThrow();
  });
});
