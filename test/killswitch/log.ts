// A real pino logger writing JSON lines into memory, so tests can read what was logged.

import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface CapturedLog {
  logger: Logger;
  lines: Array<{ level: number; msg: string; [k: string]: unknown }>;
  text(): string;
}

export function captureLogger(): CapturedLog {
  const lines: CapturedLog['lines'] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as never);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return { logger, lines, text: () => lines.map((l) => `${l.msg} ${JSON.stringify(l)}`).join('\n') };
}
