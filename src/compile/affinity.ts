// Session affinity (ClientIP) keys. kube-proxy keeps one timeout set per endpoint of an
// affinity service; nftproxy keeps ONE dynamic set per family, keyed by
// `client address . endpoint key`, because the kernel finds a set by walking the table's list
// of sets: with 8,580 per-endpoint sets (10k services, 5% with affinity) a full load took
// 21.7 s instead of 4.5 s. The endpoint key is a hash of the endpoint's identity, so the rules
// and the kernel's remembered clients agree across syncs and daemon restarts.
//
// Generations: kube-proxy deletes an endpoint's set when the endpoint goes, so if it comes
// back its clients are not remembered. A shared set cannot be emptied per endpoint without
// listing it, so instead an endpoint that went away comes back under a new key: the
// generation, counted by the caller (daemon/affinity-generations.ts), is part of the hash.
import { createHash } from 'node:crypto';
import type { AffinityKey } from '../ir/types.js';

/** Generation of an endpoint's affinity memory (0 unless it went away and came back). */
export type GenerationOf = (endpointId: string) => number;
export const firstGeneration: GenerationOf = () => 0;

export function affinityKey(endpointId: string, generation: number): AffinityKey {
  const d = createHash('sha256').update(generation === 0 ? endpointId : `${endpointId}#${generation}`).digest();
  return [d.readUInt32BE(0) >>> 1, d.readUInt32BE(4) >>> 1];
}

/** The shared set's capacity: clients × affinity endpoints they use, across all services. */
export const AFFINITY_SET_SIZE = 1 << 22;
/** The set's default timeout; every update gives its service's own timeout. */
export const AFFINITY_DEFAULT_TIMEOUT = 10800;
