import { parentPort } from 'node:worker_threads';
import { isVirtError } from '../../contracts/errors.ts';
import { seededRandomBytes, uuidFromSeed } from '../../contracts/ids.ts';
import { parseDomainXml, parseNetworkXml, parsePoolXml, parseVolumeXml } from '../../contracts/xml/index.ts';
import type { ParseJob, ParseReply } from './parse-pool.ts';

/**
 * One parse pool thread: parses what it is sent with the same seeded defaults the service would use.
 * Documents are read in Unicode NFC, so a composed and a decomposed spelling of a name are one name.
 */

const PARSERS = { domain: parseDomainXml, network: parseNetworkXml, pool: parsePoolXml, volume: parseVolumeXml } as const;

const run = (job: ParseJob): ParseReply => {
  const opts = job.seed === undefined ? {} : { uuid: () => uuidFromSeed(job.seed!), randomBytes: seededRandomBytes(job.seed) };
  try {
    return { id: job.id, ok: true, definition: PARSERS[job.kind](job.xml.normalize('NFC'), opts) };
  } catch (e) {
    if (isVirtError(e)) return { id: job.id, ok: false, error: e.toBody() };
    return { id: job.id, ok: false, error: { code: 'internal-error', message: `cannot parse XML: ${String(e)}` } };
  }
};

parentPort?.on('message', (job: ParseJob) => parentPort!.postMessage(run(job)));
