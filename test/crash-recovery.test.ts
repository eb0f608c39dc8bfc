import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandAccepted } from '../client/index.ts';
import type { LifecycleEvent } from '../contracts/lifecycle.ts';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';

describe('killing the projector and the host agent mid-stream', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  it('loses nothing and starts no domain twice', async () => {
    const c = stack.client;
    const N = 40;
    const starts: CommandAccepted[] = [];
    const issue = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await c.define({ definition: { name: `crash-${i}`, memoryKiB: 65536, vcpus: 1 } });
        starts.push(await c.start(`crash-${i}`, { timeoutSeconds: 120 }));
      }
    };
    await issue(0, 10);
    // Mid-stream: commands keep arriving while the readers are dead.
    await Promise.all([stack.kill('projector'), stack.kill('host-agent')]);
    await issue(10, 25);
    await stack.start('projector');
    await issue(25, 30);
    await stack.start('host-agent');
    await stack.kill('host-agent');
    await issue(30, N);
    await stack.start('host-agent');

    for (const s of starts) {
      const v = await c.outcome(s, 60_000);
      expect(v.observed.state).toBe('running');
    }
    const guests = await testDriverState(stack);
    expect(guests.filter((g) => g.name.startsWith('crash-'))).toHaveLength(N);
    for (const g of guests.filter((g) => g.name.startsWith('crash-'))) expect(g.boots, g.name).toBe(1);

    const views = await c.list({ all: true, name: 'crash-' });
    expect(views).toHaveLength(N);

    // The feed holds each domain's events once, in order, despite redeliveries.
    const seen: LifecycleEvent[] = [];
    const ac = new AbortController();
    const reading = (async () => {
      for await (const e of c.lifecycle({ from: 'all', signal: ac.signal })) seen.push(e);
    })().catch(() => undefined);
    const end = Date.now() + 15_000;
    while (seen.filter((e) => e.name.startsWith('crash-') && e.event === 'STARTED').length < N && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    ac.abort();
    await reading;
    for (let i = 0; i < N; i++) {
      const mine = seen.filter((e) => e.name === `crash-${i}`).map((e) => `${e.event}/${e.detail}`);
      expect(mine, `crash-${i}`).toEqual(['DEFINED/ADDED', 'STARTED/BOOTED']);
    }
  });

  it('rebuilds the same views from the start of the log', async () => {
    const c = stack.client;
    // Quiesce: with the agent gone nothing new is reported, so both snapshots see the same log.
    await stack.kill('host-agent', 'SIGTERM');
    const lastSeq = async () => (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;
    let seq0 = await lastSeq();
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const seq1 = await lastSeq();
      if (seq1 === seq0) break;
      seq0 = seq1;
    }
    const before = (await c.list({ all: true, minSeq: seq0, waitMs: 20_000 })).map(({ updatedAt: _u, ...v }) => v);
    const hostsBefore = (await c.hosts()).map((h) => ({ hostId: h.hostId, version: h.version, instanceId: h.instanceId }));
    await stack.kill('projector', 'SIGTERM');
    await stack.start('projector', { VIRTPLANE_REBUILD: 'true' });
    const seq = (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;
    const after = (await c.list({ all: true, minSeq: seq, waitMs: 20_000 })).map(({ updatedAt: _u, ...v }) => v);
    expect(after).toEqual(before);
    const hostsAfter = (await c.hosts()).map((h) => ({ hostId: h.hostId, version: h.version, instanceId: h.instanceId }));
    expect(hostsAfter).toEqual(hostsBefore);
  });
});
