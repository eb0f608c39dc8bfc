import { DomainDefinition } from '../../contracts/domain/definition.ts';
import { fromZodError, isVirtError, type VirtErrorBody } from '../../contracts/errors.ts';
import { seededRandomBytes, uuidFromSeed } from '../../contracts/ids.ts';
import { NetworkDefinition } from '../../contracts/network/definition.ts';
import { StoragePoolDefinition, StorageVolumeDefinition } from '../../contracts/storage/definition.ts';
import { parseDomainXml, parseNetworkXml, parsePoolXml, parseVolumeXml } from '../../contracts/xml/index.ts';

/**
 * The work the parse pool does, the same on a thread and on the loop: reading libvirt XML (in
 * Unicode NFC, so a composed and a decomposed spelling of a name are one name) with the seeded
 * defaults a retried define needs, and checking JSON definitions against their schemas.
 */

const XML = { domain: parseDomainXml, network: parseNetworkXml, pool: parsePoolXml, volume: parseVolumeXml } as const;
const JSON_SCHEMAS = { domain: DomainDefinition, network: NetworkDefinition, pool: StoragePoolDefinition, volume: StorageVolumeDefinition } as const;

export type XmlKind = keyof typeof XML;
export type JsonKind = keyof typeof JSON_SCHEMAS;

/** `seed`: a define without a uuid (or MAC) gets ones derived from it, so a retried define is the same. */
export type Job = { kind: XmlKind; xml: string; seed?: string } | { kind: `${JsonKind}-json`; json: unknown };
export type JobResult = { ok: true; definition: unknown } | { ok: false; error: VirtErrorBody };

export const runJob = (job: Job): JobResult => {
  try {
    if ('xml' in job) {
      const seed = job.seed;
      const opts = seed === undefined ? {} : { uuid: () => uuidFromSeed(seed), randomBytes: seededRandomBytes(seed) };
      return { ok: true, definition: XML[job.kind](job.xml.normalize('NFC'), opts) };
    }
    const parsed = JSON_SCHEMAS[job.kind.slice(0, -'-json'.length) as JsonKind].safeParse(job.json);
    return parsed.success ? { ok: true, definition: parsed.data } : { ok: false, error: fromZodError(parsed.error).toBody() };
  } catch (e) {
    if (isVirtError(e)) return { ok: false, error: e.toBody() };
    return { ok: false, error: { code: 'internal-error', message: `cannot read the definition: ${String(e)}` } };
  }
};
