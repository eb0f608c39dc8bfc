import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { LifecycleEvent } from '../contracts/lifecycle.ts';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';
import { initTelemetry, memoryExporter } from '../platform/tracing.ts';

const collect = (stack: Stack, domainId: string) => {
  const events: LifecycleEvent[] = [];
  const ac = new AbortController();
  const done = (async () => {
    for await (const e of stack.client.lifecycle({ domainId, from: 'all', signal: ac.signal })) events.push(e);
  })().catch(() => undefined);
  return {
    events,
    async until(n: number, ms = 10_000) {
      const end = Date.now() + ms;
      while (events.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
      return events.map((e) => `${e.event}/${e.detail}`);
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
};

describe('domain lifecycle through the client, end to end', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  it('defines, starts, suspends, resumes, reboots, shuts down, destroys and undefines', async () => {
    const c = stack.client;
    const def = await c.define({ definition: { name: 'life-1', memoryKiB: 262144, vcpus: 1 } });
    expect(def.name).toBe('life-1');
    const feed = collect(stack, def.domainId);

    const view = async (accepted: Awaited<ReturnType<typeof c.start>>) => c.outcome(accepted, 10_000);
    expect((await view(await c.start('life-1'))).observed).toEqual({ state: 'running', reason: 'booted' });
    expect((await view(await c.suspend('life-1'))).observed).toEqual({ state: 'paused', reason: 'user' });
    expect((await view(await c.resume('life-1'))).observed).toEqual({ state: 'running', reason: 'unpaused' });
    expect((await view(await c.reboot('life-1'))).observed.state).toBe('running');
    expect((await view(await c.shutdown('life-1'))).observed).toEqual({ state: 'shutoff', reason: 'shutdown' });
    expect((await view(await c.start(def.domainId))).observed.state).toBe('running');
    expect((await view(await c.destroy('life-1'))).observed).toEqual({ state: 'shutoff', reason: 'destroyed' });
    const un = await c.undefine('life-1');
    await expect(c.get('life-1', { minVersion: un.version })).rejects.toMatchObject({ code: 'no-domain' });

    expect(await feed.until(9)).toEqual([
      'DEFINED/ADDED',
      'STARTED/BOOTED',
      'SUSPENDED/PAUSED',
      'RESUMED/UNPAUSED',
      'STOPPED/SHUTDOWN',
      'STARTED/BOOTED',
      'STOPPED/DESTROYED',
      'UNDEFINED/REMOVED',
    ]);
    expect(feed.events.every((e) => e.actor === 'test' || e.actor === `host:${stack.hostId}`)).toBe(true);
    await feed.stop();
  });

  it('answers forbidden transitions with libvirt errors and records nothing', async () => {
    const c = stack.client;
    const d = await c.define({ definition: { name: 'life-2', memoryKiB: 131072, vcpus: 1 } });
    // A test domain answers as libvirt's test driver: resume and shutdown of an inactive domain are internal errors.
    await expect(c.resume('life-2')).rejects.toMatchObject({ code: 'internal-error', message: "domain 'life-2' not paused" });
    await expect(c.destroy('life-2')).rejects.toMatchObject({ code: 'operation-invalid', message: 'domain is not running' });
    await expect(c.shutdown('life-2')).rejects.toMatchObject({ code: 'internal-error', message: "domain 'life-2' not running" });
    await c.outcome(await c.start('life-2'), 10_000);
    await expect(c.start('life-2')).rejects.toMatchObject({ code: 'operation-invalid', message: 'domain is already running' });
    const v = await c.get('life-2');
    expect(v.version).toBeGreaterThan(d.version);
    expect(v.lastError).toBeNull();
  });

  it('refuses a second domain with a taken name, and lets the name go with the domain', async () => {
    const c = stack.client;
    await c.define({ definition: { name: 'taken', memoryKiB: 131072, vcpus: 1 } });
    await expect(c.define({ definition: { name: 'taken', memoryKiB: 131072, vcpus: 1 } })).rejects.toMatchObject({
      code: 'operation-failed',
      message: expect.stringMatching(/^domain 'taken' already exists with uuid /),
    });
    await c.undefine('taken');
    const again = await c.define({ definition: { name: 'taken', memoryKiB: 131072, vcpus: 1 } });
    expect(again.name).toBe('taken');
  });

  it('starts a domain exactly once when 50 start commands race', async () => {
    const c = stack.client;
    const d = await c.define({ definition: { name: 'race-1', memoryKiB: 131072, vcpus: 1 } });
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => c.start('race-1')));
    const accepted = results.filter((r) => r.status === 'fulfilled');
    expect(accepted).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') {
        expect(r.reason.code).toBe('operation-invalid');
        expect(r.reason.message).toMatch(/already being started|already running/);
      }
    }
    const v = await c.outcome((accepted[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof c.start>>>).value, 10_000);
    expect(v.observed.state).toBe('running');
    const commits = await stack.nats.nats.jsm.streams.getMessage('EVENTS', { last_by_subj: `ev.domain.${d.domainId}` });
    expect(commits).not.toBeNull();
    const guest = (await testDriverState(stack)).find((g) => g.uuid === d.domainId);
    expect(guest?.boots).toBe(1);
  });

  it('carries the caller\'s trace into the events it records', async () => {
    initTelemetry({ inMemory: true });
    const d = await stack.client.define({ definition: { name: 'traced', memoryKiB: 65536, vcpus: 1 } });
    const m = await stack.nats.nats.jsm.streams.getMessage('EVENTS', { last_by_subj: `ev.domain.${d.domainId}` });
    const commit = JSON.parse(new TextDecoder().decode(m!.data)) as { events: Array<{ traceContext: { traceparent?: string } }> };
    const traceId = commit.events[0]!.traceContext.traceparent?.split('-')[1];
    const requestSpan = memoryExporter.getFinishedSpans().find((sp) => sp.name === 'request cmd.domain.define');
    expect(requestSpan).toBeDefined();
    expect(traceId).toBe(requestSpan!.spanContext().traceId);
  });

  it('applies a command id once and repeats the first reply', async () => {
    const c = stack.client;
    const commandId = `cmd-${randomUUID()}`;
    const first = await c.define({ definition: { name: 'idem-1', memoryKiB: 131072, vcpus: 1 } }, { commandId });
    const before = (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;
    const second = await c.define({ definition: { name: 'idem-1', memoryKiB: 131072, vcpus: 1 } }, { commandId });
    expect(second).toMatchObject({ domainId: first.domainId, version: first.version, duplicate: true });
    expect((await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq).toBe(before);

    const startId = `cmd-${randomUUID()}`;
    const s1 = await c.start('idem-1', { commandId: startId });
    const s2 = await c.start('idem-1', { commandId: startId });
    expect(s2).toMatchObject({ version: s1.version, duplicate: true });
  });
});
