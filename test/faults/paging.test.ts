import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { isVirtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { DomainView } from '../../contracts/views.ts';
import { PROJECT_ROOT } from '../../platform/config.ts';
import { call, serve } from '../../platform/rpc.ts';
import { seedDomains } from '../fixtures/seed-domains.ts';
import { startStack, type Stack } from '../fixtures/stack.ts';

/**
 * Replies never exceed the server's payload limit: lists are paged by count and by size, the client
 * and the CLI follow the cursors, and nothing a handler returns can make `respond` throw.
 */

const run = promisify(execFile);
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('paged lists and replies within the payload limit', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack();
    env = { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url } as Record<string, string>;
  });
  afterAll(async () => stack?.stop());

  const cli = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, [CLI, ...args], { env, timeout: 300_000, maxBuffer: 512 * 1024 * 1024 });
      return { code: 0, stdout };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  it('answers an oversized reply with a structured error and keeps serving', async () => {
    const n = stack.nats.nats;
    const max = n.nc.info!.max_payload;
    const sub = serve(n.nc, 'test.huge', undefined, z.object({ bytes: z.number() }), async ({ bytes }) => ({ blob: 'x'.repeat(bytes) }));
    try {
      const err = await call(n.nc, 'test.huge', { bytes: max + 10 }).catch((e: unknown) => e);
      expect(isVirtError(err) && err.code).toBe('operation-failed');
      expect((err as Error).message).toMatch(/payload limit/);
      expect((await call<{ blob: string }>(n.nc, 'test.huge', { bytes: 10 })).blob).toHaveLength(10);
    } finally {
      sub.unsubscribe();
    }
  });

  it('lists domains of ~900 KB each, whose one reply would exceed the limit, and the projector lives on', { timeout: 300_000 }, async () => {
    const c = stack.client;
    const max = stack.nats.nats.nc.info!.max_payload;
    const size = 900 * 1024;
    const count = Math.ceil((max * 1.5) / size);
    for (let i = 0; i < count; i++) {
      await c.define({ definition: { name: `big-${String(i).padStart(2, '0')}`, memoryKiB: 65536, vcpus: 1, description: `${i}`.padEnd(size, 'd') } });
    }
    const seq = (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;
    // Again and again, as an operator would: every time, all of them, and the projector still answers.
    for (let round = 0; round < 3; round++) {
      const pages: number[] = [];
      const names: string[] = [];
      for await (const page of c.listPages({ all: true, name: 'big-', minSeq: seq, waitMs: 20_000 })) {
        pages.push(page.length);
        names.push(...page.map((v) => v.name));
      }
      expect(names).toEqual(Array.from({ length: count }, (_, i) => `big-${String(i).padStart(2, '0')}`));
      expect(pages.length).toBeGreaterThan(1);
      for (const v of await c.list({ all: true, name: 'big-', pageSize: 1 })) expect(v.definition.description).toHaveLength(size);
    }
    expect(stack.services.get('projector')!.child.exitCode).toBeNull();
    // The CLI's --json output is one document, however many pages it took.
    const out = await cli('list', '--all', '--name-contains', 'big-', '--json', '--page-size', '2');
    expect(out.code).toBe(0);
    const doc = JSON.parse(out.stdout) as DomainView[];
    expect(doc.map((v) => v.name)).toHaveLength(count);
  });

  it('refuses a hostile cursor or page size with a structured error', async () => {
    const n = stack.nats.nats;
    for (const body of [{ cursor: 'not-a-cursor' }, { cursor: Buffer.from('{"a":1}').toString('base64url') }, { pageSize: 0 }, { pageSize: 1e9 }, { pageSize: 'x' }]) {
      const err = await call(n.nc, subjects.query('domain', 'list'), { all: true, ...body }).catch((e: unknown) => e);
      expect(isVirtError(err) && err.code, JSON.stringify(body)).toBe('invalid-arg');
    }
    expect((await cli('list', '--page-size', '0')).code).not.toBe(0);
  });

  it('lists 50,000 domains through the client and the CLI: every page complete, no duplicates, no gaps', { timeout: 900_000 }, async () => {
    const n = stack.nats.nats;
    const N = 50_000;
    const names = Array.from({ length: N }, (_, i) => `many-${String(i).padStart(5, '0')}`);
    const seq = await seedDomains(n, names);
    const c = stack.client;
    // Wait (without a timed assertion) until the projector has folded them all.
    for (;;) {
      const ok = await c.list({ all: true, name: 'many-0000', minSeq: seq, waitMs: 25_000 }).then(
        () => true,
        (e: unknown) => {
          if (isVirtError(e) && e.code === 'timeout') return false;
          throw e;
        },
      );
      if (ok) break;
      await sleep(100);
    }

    let pageCount = 0;
    const seen: string[] = [];
    for await (const page of c.listPages({ all: true, name: 'many-', pageSize: 1000, minSeq: seq })) {
      pageCount++;
      expect(page.length).toBeLessThanOrEqual(1000);
      seen.push(...page.map((v) => v.name));
    }
    expect(pageCount).toBeGreaterThanOrEqual(50);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(names);

    // The default page size and no filter but the name: the same 50,000, in order.
    expect((await c.list({ all: true, name: 'many-' })).map((v) => v.name)).toEqual(names);

    const out = await cli('list', '--all', '--name-contains', 'many-', '--page-size', '5000');
    expect(out.code).toBe(0);
    const rows = out.stdout.trimEnd().split('\n').slice(2).map((l) => l.trim().split(/\s+/)[1]);
    expect(rows).toEqual(names);
  });
});
