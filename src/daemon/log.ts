// Structured logs (pino, JSON lines) on stderr: stdout stays free for data commands.
import { type Logger, pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export function createLogger(level: LogLevel = 'info'): Logger {
  return pino({ level, base: { app: 'nftproxy' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
}
