import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { decodeJson } from '../platform/nats.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const raw = async (stack: Stack, subject: string, body: string | Uint8Array) => {
  const m = await stack.nats.nats.nc.request(subject, body, { timeout: 5000 });
  return decodeJson(m.data) as { ok: boolean; error?: { code: string; message: string; details?: unknown } };
};

describe('bad input gets a structured error and changes nothing', () => {
  let stack: Stack;
  let lastSeq: () => Promise<number>;
  beforeAll(async () => {
    stack = await startStack();
    lastSeq = async () => (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;
    await stack.client.define({ definition: { name: 'victim', memoryKiB: 65536, vcpus: 1 } });
  });
  afterAll(async () => stack?.stop());

  const cases: Array<[string, string, string, RegExp]> = [
    ['malformed JSON', 'cmd.domain.define', '{"definition": {', /^malformed JSON/],
    ['not an object', 'cmd.domain.start', '[1,2,3]', /invalid argument/],
    ['missing domain', 'cmd.domain.start', '{}', /domain/],
    ['wrong type', 'cmd.domain.start', '{"domain": 42}', /domain/],
    ['both definition and xml', 'cmd.domain.define', '{"definition": {}, "xml": "<domain/>"}', /exactly one/],
    ['negative memory', 'cmd.domain.define', '{"definition": {"name": "x", "memoryKiB": -1, "vcpus": 1}}', /memoryKiB/],
    ['name with newline', 'cmd.domain.define', '{"definition": {"name": "a\\nb", "memoryKiB": 1024, "vcpus": 1}}', /newline/],
    ['zero vcpus', 'cmd.domain.define', '{"definition": {"name": "x", "memoryKiB": 1024, "vcpus": 0}}', /vcpus/],
    ['bad uuid', 'cmd.domain.define', '{"definition": {"name": "x", "uuid": "nope", "memoryKiB": 1024, "vcpus": 1}}', /uuid/],
    ['bad command id', 'cmd.domain.start', '{"domain": "victim", "commandId": "has spaces in it"}', /commandId/],
    ['huge timeout', 'cmd.domain.start', '{"domain": "victim", "timeoutSeconds": 1e9}', /timeoutSeconds/],
    ['bad agent report', 'agent.host-a.report', '{"kind": "completed"}', /invalid argument/],
    ['bad query', 'query.domain.get', '{"domain": ""}', /domain/],
  ];

  for (const [label, subject, body, message] of cases) {
    it(`${label}: invalid-arg`, async () => {
      const before = await lastSeq();
      const reply = await raw(stack, subject, body);
      expect(reply.ok).toBe(false);
      expect(reply.error?.code).toBe('invalid-arg');
      expect(reply.error?.message).toMatch(message);
      expect(await lastSeq()).toBe(before);
    });
  }

  const hostile: Array<[string, string]> = [
    ['unclosed tags', '<domain type="test"><name>x</name><memory>1024</memory>'],
    ['wrong root', '<network><name>x</name></network>'],
    ['billion laughs', '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><domain type="test"><name>&lol3;</name><memory>1024</memory><vcpu>1</vcpu></domain>'],
    ['external entity', '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><domain type="test"><name>&xxe;</name><memory>1024</memory><vcpu>1</vcpu></domain>'],
    ['deep nesting', `<domain type="test"><name>x</name><memory>1024</memory><vcpu>1</vcpu><metadata>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</metadata></domain>`],
    ['invalid unit', '<domain type="test"><name>x</name><memory unit="parsecs">1</memory><vcpu>1</vcpu></domain>'],
    ['huge document', `<domain type="test"><name>x</name><memory>1024</memory><vcpu>1</vcpu><description>${'a'.repeat(2 * 1024 * 1024)}</description></domain>`],
  ];
  for (const [label, xml] of hostile) {
    it(`hostile XML (${label}): xml-error, nothing stored`, async () => {
      const before = await lastSeq();
      const started = Date.now();
      const reply = await raw(stack, 'cmd.domain.define', JSON.stringify({ xml }));
      expect(Date.now() - started).toBeLessThan(2000);
      expect(reply.ok).toBe(false);
      expect(reply.error?.code).toBe('xml-error');
      expect(await lastSeq()).toBe(before);
    });
  }

  it('unknown ids: no-domain, by uuid and by name', async () => {
    const before = await lastSeq();
    const id = randomUUID();
    expect((await raw(stack, 'cmd.domain.start', JSON.stringify({ domain: id }))).error).toMatchObject({
      code: 'no-domain',
      message: `Domain not found: no domain with matching uuid '${id}'`,
    });
    expect((await raw(stack, 'cmd.domain.destroy', JSON.stringify({ domain: 'ghost' }))).error).toMatchObject({
      code: 'no-domain',
      message: "Domain not found: no domain with matching name 'ghost'",
    });
    expect((await raw(stack, 'query.domain.get', JSON.stringify({ domain: 'ghost' }))).error?.code).toBe('no-domain');
    expect(await lastSeq()).toBe(before);
  });

  it('a host cannot report on a domain it does not own', async () => {
    const v = await stack.client.get('victim');
    const before = await lastSeq();
    const reply = await raw(
      stack,
      'agent.intruder.report',
      JSON.stringify({ kind: 'observed', reportId: `obs-${randomUUID()}`, domainId: v.id, observed: { state: 'crashed', reason: 'panicked' } }),
    );
    expect(reply.error?.code).toBe('unauthorized');
    expect(await lastSeq()).toBe(before);
  });

  it('placement on an unknown host is refused', async () => {
    const before = await lastSeq();
    const reply = await raw(stack, 'cmd.domain.define', JSON.stringify({ definition: { name: 'nowhere', memoryKiB: 1024, vcpus: 1 }, hostId: 'no-such-host' }));
    expect(reply.error?.code).toBe('no-host');
    expect(await lastSeq()).toBe(before);
  });

  it('the services keep answering after all of it', async () => {
    const v = await stack.client.get('victim');
    expect(v.name).toBe('victim');
  });
});
