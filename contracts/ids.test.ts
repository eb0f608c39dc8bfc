import { describe, expect, it } from 'vitest';
import { isVirtError } from './errors.ts';
import { canonicalIdentity, ObjectName, ObjectRef, Uuid } from './ids.ts';
import { DefineDomainRequest, MAX_DEFINITION_BYTES } from './domain/commands.ts';
import { ReportRequest, ClaimRequest } from './tasks.ts';
import { subjects } from './subjects.ts';

const UUID = '0c7a3f52-9d1e-4b6a-8f2c-5e4d3c2b1a09';
const NFC = 'caf\u00e9';
const NFD = 'cafe\u0301';

describe('ids and names', () => {
  it('a uuid in any case is the lower-case uuid', () => {
    expect(Uuid.parse(UUID.toUpperCase())).toBe(UUID);
    expect(ObjectRef.parse(UUID.toUpperCase())).toBe(UUID);
    expect(Uuid.safeParse('>').success).toBe(false);
  });

  it('NFC and NFD spellings are one name', () => {
    expect(NFC).not.toBe(NFD);
    expect(ObjectName.parse(NFD)).toBe(NFC);
    expect(ObjectRef.parse(NFD)).toBe(ObjectRef.parse(NFC));
  });

  it.each([
    ['empty', ''],
    ['a slash', 'a/b'],
    ['a NUL', 'a\u0000b'],
    ['a newline', 'a\nb'],
    ['DEL', 'a\u007f'],
    ['a zero-width space', 'web\u200b1'],
    ['a zero-width joiner', 'web\u200d1'],
    ['a word joiner', 'web\u20601'],
    ['a byte-order mark', '\ufeffweb1'],
    ['a right-to-left override', 'web\u202e1'],
    ['a bidi isolate', 'web\u20671'],
    ['a leading space', ' web1'],
    ['a trailing tab', 'web1\t'],
    ['a trailing no-break space', 'web1\u00a0'],
    ['too long', 'x'.repeat(256)],
  ])('a name with %s is refused', (_what, name) => {
    expect(ObjectName.safeParse(name).success).toBe(false);
    expect(ObjectRef.safeParse(name).success).toBe(false);
  });

  it('names with dots, wildcards and spaces inside are fine names: they never go into a subject as they are', () => {
    for (const name of ['a.b', '>', '*', 'my web server', 'сервер-1', '数据库']) {
      expect(ObjectName.parse(name)).toBe(name);
      expect(subjects.nameClaim('domain', name)).toMatch(/^ev\.name\.domain\.[A-Za-z0-9_-]+$/);
    }
  });

  it('a parsed definition gets its canonical uuid and name, or invalid-arg', () => {
    expect(canonicalIdentity({ uuid: UUID.toUpperCase(), name: NFD, x: 1 })).toEqual({ uuid: UUID, name: NFC, x: 1 });
    const same = { uuid: UUID, name: 'web1' };
    expect(canonicalIdentity(same)).toBe(same);
    for (const bad of [{ uuid: UUID, name: 'a/b' }, { uuid: UUID, name: 'x\u200b' }, { uuid: 'nope', name: 'x' }]) {
      try {
        canonicalIdentity(bad);
        expect.unreachable();
      } catch (e) {
        expect(isVirtError(e) && e.code).toBe('invalid-arg');
      }
    }
  });

  it('agent reports and claims take ids only as uuids and tokens', () => {
    const report = { reportId: 'report-0001', kind: 'observed', observed: { state: 'running', reason: 'booted' } };
    for (const domainId of ['>', '*', 'a.b', 'a b', '']) {
      expect(ReportRequest.safeParse({ ...report, domainId }).success).toBe(false);
      expect(ClaimRequest.safeParse({ taskId: 't-1', domainId, placementEpoch: 1 }).success).toBe(false);
    }
    expect(ClaimRequest.safeParse({ taskId: '>', domainId: UUID, placementEpoch: 1 }).success).toBe(false);
    expect(ReportRequest.parse({ ...report, domainId: UUID.toUpperCase() }).domainId).toBe(UUID);
  });

  it('the subject builder refuses an aggregate id that is not one token', () => {
    for (const id of ['>', '*', 'a.b', 'a b', '']) expect(() => subjects.aggregate('domain', id)).toThrow(/not a subject token/);
    expect(subjects.aggregate('domain', UUID)).toBe(`ev.domain.${UUID}`);
  });

  it('a JSON definition over the limit is refused, naming the limit', () => {
    const big = { name: 'big', blob: 'x'.repeat(MAX_DEFINITION_BYTES) };
    const r = DefineDomainRequest.safeParse({ definition: big });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(/larger than the 1 MiB limit/);
    expect(DefineDomainRequest.safeParse({ definition: { name: 'small' } }).success).toBe(true);
  });
});
