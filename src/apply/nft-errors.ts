// nft's error output -> the lines (and so the service ports) that caused it. nft reports
// each failing command as "/dev/stdin:LINE:COL-COL: Error: …" followed by the line and a
// caret marker; the kernel's verdict for a failed command of the batch is reported the
// same way. Lines the transaction builder tagged with an owner name the culprit.
import type { OwnedLine } from '../render/nft-text.js';

export interface NftFailure {
  readonly message: string;
  /** service-port ids the failing lines belong to */
  readonly owners: readonly string[];
  /** the failing lines, 1-based */
  readonly lines: readonly number[];
}

export function attributeNftError(stderr: string, lines: readonly OwnedLine[]): NftFailure {
  const failing: number[] = [];
  const messages: string[] = [];
  for (const l of stderr.split('\n')) {
    const m = /^(?:\/dev\/stdin|-):(\d+):\d+(?:-\d+)?: Error: (.*)$/.exec(l);
    if (m) { failing.push(Number(m[1])); messages.push(m[2]!); }
  }
  const owners = [...new Set(failing.map((n) => lines[n - 1]?.owner).filter((o): o is string => o !== undefined))].sort();
  const message = messages.length ? [...new Set(messages)].join('; ') : stderr.trim().split('\n').slice(0, 3).join(' | ') || 'nft failed without a message';
  return { message, owners, lines: failing };
}
