// LIST for the informers: every page of a collection as raw JSON, with the kubeconfig's
// TLS and credentials.
//
// Why not the generated CoreV1Api: it deserializes into model classes that drop every
// field the client release does not know and turn timestamps into Date objects, while the
// watch stream hands over raw JSON. Mixing both in one cache would make an object look
// different after a relist than after a watch event (and lose fields newer API servers
// add). Raw JSON on both paths, trimmed by the same whitelist (kubernetes-trim.ts), keeps
// the cache one shape.
import { request as httpRequest } from 'node:http';
import { type RequestOptions, request as httpsRequest } from 'node:https';
import type { KubeConfig, KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';

/** An HTTP error answer of the API server, with the code its Status carried. */
export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export interface ListOptions {
  readonly fieldSelector?: string;
  /** items per page (client-go's reflector uses 500) */
  readonly pageSize?: number;
  /** per request; a list that hangs would hold the first sync forever */
  readonly timeoutMs?: number;
  /** what to keep of each item, applied page by page (a whole list of whole objects is never held) */
  readonly keep?: (item: KubernetesObject) => KubernetesObject;
}

/**
 * All items of the collection at `path`, paging with limit/continue. Every page of one
 * list is the same snapshot (the server encodes its version in the continue token), so the
 * result is a consistent view at `metadata.resourceVersion` that a watch can resume from.
 * If the token expires mid-way (410), the list starts over once without paging.
 */
export async function listAll(kc: KubeConfig, path: string, o: ListOptions = {}): Promise<KubernetesListObject<KubernetesObject>> {
  try {
    return await listPaged(kc, path, o, o.pageSize ?? 500);
  } catch (e) {
    if (e instanceof KubeApiError && e.statusCode === 410) return listPaged(kc, path, o, 0);
    throw e;
  }
}

async function listPaged(kc: KubeConfig, path: string, o: ListOptions, limit: number): Promise<KubernetesListObject<KubernetesObject>> {
  const items: KubernetesObject[] = [];
  let resourceVersion: string | undefined;
  let cont: string | undefined;
  do {
    const query = new URLSearchParams();
    if (limit > 0) query.set('limit', String(limit));
    if (cont) query.set('continue', cont);
    if (o.fieldSelector) query.set('fieldSelector', o.fieldSelector);
    const page = await getJson(kc, `${path}?${query}`, o.timeoutMs ?? 60_000);
    if (!isList(page)) throw new Error(`GET ${path}: the answer is not a list`);
    for (const item of page.items) items.push(o.keep ? o.keep(item) : item);
    resourceVersion ??= page.metadata?.resourceVersion;
    cont = page.metadata?.continue || undefined;
  } while (cont);
  if (!resourceVersion) throw new Error(`GET ${path}: the list carries no resourceVersion to watch from`);
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion }, items };
}

function isList(v: unknown): v is KubernetesListObject<KubernetesObject> & { metadata?: { resourceVersion?: string; continue?: string } } {
  return typeof v === 'object' && v !== null && Array.isArray((v as { items?: unknown }).items);
}

async function getJson(kc: KubeConfig, pathAndQuery: string, timeoutMs: number): Promise<unknown> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(cluster.server + pathAndQuery);
  const opts: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  // Credentials, CA and client certificates, as the library's own Watch gets them.
  await kc.applyToHTTPSOptions(opts);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const code = res.statusCode ?? 0;
        if (code !== 200) return reject(new KubeApiError(code, `GET ${url.pathname}: ${code} ${statusMessage(text) ?? res.statusMessage ?? ''}`.trim()));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`GET ${url.pathname}: the answer is not JSON`));
        }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url.pathname}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The message of a Status body, if the error answer is one. */
function statusMessage(text: string): string | undefined {
  try {
    const s = JSON.parse(text) as { kind?: unknown; message?: unknown };
    return s.kind === 'Status' && typeof s.message === 'string' ? s.message : undefined;
  } catch {
    return undefined;
  }
}
