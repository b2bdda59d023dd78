// The shape of results.json, and the context the phases share.
import type { Applier } from '../../src/apply/applier.js';
import type { Model } from '../../src/model/types.js';
import type { Lab } from './lab.js';
import type { MeasuringWriter } from './nftproxy.js';
import type { Layout } from './peers/layout.js';
import type { Plan, Size } from './plan.js';
import type { Progress } from './progress.js';
import type { ChangeKind, Counts, Generator } from './workload.js';

export interface Stats { readonly n: number; readonly p50: number; readonly p99: number; readonly mean: number; readonly max: number }

export interface CompileRun { buildMs: number; compileMs: number; renderMs: number; heapUsedDeltaMB: number; heapRetainedMB: number; rssPeakMB: number; textMB: number; lines: number; servicePorts: number }
export interface CompileRow { size: Size; runs: CompileRun[]; median?: Omit<CompileRun, 'servicePorts' | 'lines' | 'textMB'> & { lines: number; textMB: number }; note?: string }

export interface LoadRun { ms: number; rssMB: number | undefined; ok: boolean; timedOut: boolean; error?: string; syncMs?: number }
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
  /** end-to-end per change kind (nftproxy: compile + Applier.sync; peers: the delta transaction) */
  kinds: Partial<Record<ChangeKind, Stats>>;
  /** nftproxy: compile alone and the nft process alone, for the endpoint change */
  compile?: Partial<Record<ChangeKind, Stats>>;
  nft?: Partial<Record<ChangeKind, Stats>>;
  /** upstream's separate stale-chain deletion transaction */
  staleDelete?: Stats;
  linesP50?: Partial<Record<ChangeKind, number>>;
  note?: string;
  error?: string;
}

export interface DaemonRun { coldStartMs: number; sourceReadyMs?: number; syncLogMs?: number; applyMs?: number; conntrackMs?: number; steadyRssMB: number | undefined; peakRssMB: number | undefined }
export interface DaemonResult { size: Size; runs: DaemonRun[]; median?: { coldStartMs: number; steadyRssMB: number | undefined; peakRssMB: number | undefined }; note?: string; error?: string }

export interface ConnRound { rate: number; p50us: number; p99us: number; errors: number; conns: number; firstError?: string }
export interface DataplaneRow {
  id: string;
  loader: string;
  which: 'direct' | 'dnat1' | 'first' | 'last';
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
  partial?: { size: Size; changesPerKind: number; rows: PartialRow[] };
  daemon?: DaemonResult;
  dataplane?: { size: Size; seconds: number; concurrency: number; rounds: number; server: string; rows: DataplaneRow[]; skipped: { loader: string; why: string }[]; bpf?: BpfInfo };
  targets: TargetRow[];
  notes: string[];
}

export interface Loader {
  readonly id: string;
  readonly label: string;
  /** undefined for nftproxy itself */
  readonly layout?: Layout;
}

export interface TargetState {
  gen: Generator;
  model: Model;
  applier?: Applier;
  runner?: MeasuringWriter;
  /** the model nftproxy's lab was last synced to, when the partial-sync phase changed it */
  syncedModel?: Model;
  /** loaders whose ruleset is loaded in their lab's node namespace */
  loaded: Set<string>;
}

export interface Ctx {
  readonly plan: Plan;
  readonly progress: Progress;
  readonly tmp: string;
  readonly repo: string;
  readonly results: Results;
  readonly loaders: Loader[];
  readonly labs: Map<string, Lab>;
  target?: TargetState;
  bins?: { connbench: string; httpd: string };
}
