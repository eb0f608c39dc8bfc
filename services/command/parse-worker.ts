import { parentPort } from 'node:worker_threads';
import { runJob, type Job } from './parse-job.ts';

/** One parse pool thread: runs each job it is sent and answers with its id. */
parentPort?.on('message', ({ id, job }: { id: number; job: Job }) => parentPort!.postMessage({ id, result: runJob(job) }));
