// The shape of results.json, and the context the phases share.
import type { Model } from '../../src/model/types.js';
import type { Lab } from './lab.js';
import type { Census, Layout } from './peers/layout.js';
import type { Netns } from './sys.js';
import type { Plan, Size } from './plan.js';
import type { Progress } from './progress.js';
import type { ChangeKind, Counts, Generator } from './workload.js';

export interface Stats { readonly n: number; readonly p50: number; readonly p99: number; readonly mean: number; readonly max: number }

/** One whole-cluster compile in a fresh process: the daemon's path up to the bytes it sends. */
export interface CompileRun {
  /** buildModel */
  buildMs: number;
  /** compileParts (what the daemon compiles) */
  compileMs: number;
  /** kernel objects (kernelFamily of each part): what the writer and the differ take */
  objectsMs: number;
  /** encodeBatch of the full-sync transaction (netlink messages in memory, nothing sent) */
  encodeMs: number;
  heapUsedDeltaMB: number; heapRetainedMB: number; rssPeakMB: number;
  /** netlink bytes of the full sync, and its ops + elements */
  batchMB: number; ops: number; servicePorts: number;
}
export interface CompileRow { size: Size; runs: CompileRun[]; median?: Omit<CompileRun, 'servicePorts' | 'ops' | 'batchMB'> & { ops: number; batchMB: number }; note?: string }

export interface LoadRun {
  ms: number; rssMB: number | undefined; ok: boolean; timedOut: boolean; error?: string;
  /** the loader process's CPU time in user space and in the kernel (/usr/bin/time) */
  userSec?: number; sysSec?: number;
  /** nftproxy (sync worker): Applier.sync of the full sync, and the writer's own part (objects in -> kernel ack) */
  syncMs?: number; writerMs?: number;
  /** what the load cost the run (nftproxy: the whole worker process), for the budget */
  costMs?: number;
  worker?: { modelMs: number; compileMs: number; objectsMs: number; ops: number; bytes: number };
}
export interface FullSyncRow {
  loader: string;
  size: Size;
  /** input size: lines and bytes of what the loader read */
  lines?: number;
  bytes?: number;
  predictedMs?: number;
  runs: LoadRun[];
  medianMs?: number;
  medianRssMB?: number;
  /** why fewer than plan.runs runs (or none) */
  note?: string;
}

export interface PartialRow {
  loader: string;
  /** end-to-end per change kind (nftproxy: compile + Applier.sync; peers: the delta transaction(s); cli: the nft processes) */
  kinds: Partial<Record<ChangeKind, Stats>>;
  /** nftproxy: compile (compileParts + kernel objects), the writer's own part (its commit calls:
   * transactions in -> last kernel ack), compile + diff (all but the writer), per change kind */
  compile?: Partial<Record<ChangeKind, Stats>>;
  writer?: Partial<Record<ChangeKind, Stats>>;
  compileDiff?: Partial<Record<ChangeKind, Stats>>;
  /** nftproxy: kernel transactions per sync (p50) */
  txP50?: Partial<Record<ChangeKind, number>>;
  /** count changes split: into a count no other service uses (M -> M-1: its group is a spare of M) / back (M-1 left unused) */
  countSplit?: { toNew?: Stats; back?: Stats; writerToNew?: Stats; writerBack?: Stats };
  /** upstream's separate stale-chain deletion transaction */
  staleDelete?: Stats;
  linesP50?: Partial<Record<ChangeKind, number>>;
  note?: string;
  error?: string;
}

/** One partial sync as the daemon logged it ("synced"), and the bench's own clock around it. */
export interface DaemonSync { kind: 'endpoint' | 'count'; eventToAckMs: number; applyMs: number; durationMs: number; ops: number; transactions: number; writeToLineMs: number }

export interface DaemonRun {
  size: Size;
  source: 'manifests' | 'api';
  /** process start -> first "synced" line (bench clock) */
  startToSyncedMs?: number;
  /** the first sync's own log: initial state in hand -> kernel ack (cold start), Applier.sync (the writer's full sync), the whole sync */
  coldStartMs?: number; firstApplyMs?: number; firstSyncMs?: number; firstOps?: number;
  /** RSS shortly after the first sync, its peak (VmHWM) until then */
  rssAfterFirstMB?: number; peakAtFirstMB?: number;
  /** after 20 partial syncs: RSS, and the peak from start to that point (daemon; the largest child seen, sampled) */
  rssAfter20MB?: number; peakAt20MB?: number; childPeakMB?: number; children?: number; childNames?: string[];
  syncs: DaemonSync[];
  endpoint?: Stats; count?: Stats; endpointApply?: Stats; countApply?: Stats; endpointWriteToLine?: Stats;
  /** the first partial syncs were not all partial, or the daemon logged errors */
  note?: string;
  error?: string;
}
export interface DaemonResult { runs: DaemonRun[]; note?: string }

/** The reconcile phase: upstream's 1.36+ shape with each feature on or off, one load each, same services. */
export interface ReconcileRow { id: string; features: string; size: Size; lines?: number; census?: Census; run?: LoadRun; note?: string }

/** Issue 13's encoder decision: the same NEWSETELEM batch built by our encoder and by libnftnl. */
export interface EncoderResult {
  elements: number; shape: string;
  ts: { runs: number[]; medianMs: number; bytes: number; messages: number };
  libnftnl?: { runs: number[]; medianMs: number; bytes: number; messages: number; version: string };
  /** both batches sent into a bench namespace: the kernel's count of elements in the set after each */
  kernelCheck?: { ts: number; libnftnl?: number };
  error?: string;
}

export interface ConnRound { rate: number; p50us: number; p99us: number; errors: number; conns: number; firstError?: string }
export interface DataplaneRow {
  id: string;
  loader: string;
  /** pod: the pod's own address through a loader's table (traffic that is no service's) */
  which: 'direct' | 'dnat1' | 'first' | 'last' | 'pod';
  dst: string;
  rounds: ConnRound[];
  rate?: number;
  p50us?: number;
  p99us?: number;
  vsDirect?: number;
  vsDnat1?: number;
  note?: string;
}

/** The BPF rows' setup: where the socket LB was attached and what it held. */
export interface BpfInfo {
  object: string;
  cgroup: string;
  pinDir: string;
  /** ClusterIP entries written by BpfApplier (bpfServices of nftproxy's ruleset in the lab) and the map writes */
  entries: number;
  writes: number;
  attached: string[];
  loadMs: number;
  /** per BPF target, from a short run after a conntrack flush in the node namespace: flows whose
   * original destination is the ClusterIP (DNAT'ed by nft: must be 0) and all flows from the client */
  check: { id: string; toClusterIP: number; fromClient: number }[];
}

export interface TargetRow { name: string; threshold: string; measured: string; ratio?: number; status: 'MET' | 'MISSED' | 'NOT MEASURED'; note?: string }

export interface Results {
  meta: {
    startedAt: string;
    quick: boolean;
    wallSec?: number;
    host: Record<string, string>;
    plan: Plan;
    loaders: { id: string; label: string }[];
  };
  workloads: { size: Size; counts: Counts }[];
  samples: Record<string, string[]>;
  compile: CompileRow[];
  fullSync: FullSyncRow[];
  partial: { size: Size; changesPerKind: number; rows: PartialRow[] }[];
  daemon?: DaemonResult;
  reconcile?: { size: Size; rows: ReconcileRow[]; note?: string };
  encoder?: EncoderResult;
  dataplane?: { size: Size; seconds: number; concurrency: number; rounds: number; server: string; rows: DataplaneRow[]; skipped: { loader: string; why: string }[]; bpf?: BpfInfo };
  targets: TargetRow[];
  notes: string[];
}

export interface Loader {
  readonly id: string;
  readonly label: string;
  /** nftproxy (the sync worker: the product's writer), the nft CLI loading nftproxy's own objects, or a peer layout */
  readonly kind: 'nftproxy' | 'cli' | 'peer';
  /** peers and the CLI: how the load file is written and loaded */
  readonly layout?: Layout;
  /** 0: always runs (nftproxy, the CLI); 1: a target's reference, runs before the others; 2: the rest */
  readonly priority: 0 | 1 | 2;
  /** gets data-plane rows at the target (its own ruleset) */
  readonly dataplane: boolean;
  /** follows the partial-sync changes at the target (upstream's delta transactions) */
  readonly partial: boolean;
}

export interface TargetState {
  gen: Generator;
  model: Model;
  /** the model nftproxy's lab was last synced to, when the partial-sync phase changed it */
  syncedModel?: Model;
  /** loaders whose ruleset is loaded in their lab's node namespace */
  loaded: Set<string>;
}

/** A size the partial-sync phase runs at: nftproxy's and the CLI's namespaces, kept by the full sync. */
export interface PartialState { gen: Generator; model: Model; nftproxy?: Netns; cli?: Netns }

export interface Ctx {
  readonly plan: Plan;
  readonly progress: Progress;
  readonly tmp: string;
  readonly repo: string;
  readonly results: Results;
  readonly loaders: Loader[];
  readonly labs: Map<string, Lab>;
  target?: TargetState;
  /** per partial-sync size (sizeLabel) */
  partialAt: Map<string, PartialState>;
  bins?: { connbench: string; httpd: string };
}
