// Issue 13's encoder decision as a bench phase (encoder.ts): nftproxy's TypeScript encoder
// against libnftnl through koffi on the same 100k-element batch; each batch sent once into a
// bench namespace, the kernel's element count read back.
import { encoderBench } from '../encoder.js';
import { Netns } from '../sys.js';
import { fmtMs, fmtMB } from '../stats.js';
import type { Ctx } from '../results.js';

export async function encoderPhase(ctx: Ctx): Promise<void> {
  const { plan, progress } = ctx;
  const { elements, runs } = plan.encoder;
  progress.phase('encoder', 'Encoder: nftproxy\'s TypeScript encoder vs libnftnl (koffi)', `${elements.toLocaleString('en')} NEWSETELEM elements (addr . proto . port . slot : addr . port), ${runs} runs each, interleaved`);
  const ns = await Netns.create('enc');
  try {
    ctx.results.encoder = await progress.step('build the batch with each encoder; send each once, count the elements', () => encoderBench({ elements, runs, netns: `/run/netns/${ns.name}` }),
      (r) => `TS ${fmtMs(r.ts.medianMs)} (${fmtMB(r.ts.bytes / 2 ** 20)}, ${r.ts.messages} messages); ${r.libnftnl ? `libnftnl ${fmtMs(r.libnftnl.medianMs)} (${fmtMB(r.libnftnl.bytes / 2 ** 20)}, ${r.libnftnl.messages} messages)` : `libnftnl: ${r.error}`}; kernel counted ${r.kernelCheck?.ts ?? '?'} / ${r.kernelCheck?.libnftnl ?? '?'}`);
  } catch (e) {
    ctx.results.encoder = { elements, shape: 'addr.proto.port.slot:addr.port', ts: { runs: [], medianMs: NaN, bytes: 0, messages: 0 }, error: (e as Error).message.split('\n')[0]! };
  } finally {
    await ns.destroy();
  }
}
