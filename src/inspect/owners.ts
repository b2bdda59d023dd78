// Which service port a chain of nftproxy's layout belongs to, from its name alone: service
// port chains are named `<kind>-<hash>-<ns/name/proto/port>` (endpoint chains add
// `__<addr>/<port>`), see ir/names.ts. For chains the intended ruleset does not have (left
// over, or made by someone else) this is all there is to go on.
const CHAIN = /^(?:service|local|external|firewall|endpoint)-[A-Z2-7]{8}-(.+?)(?:__.*)?$/;

/** The service port id in a chain's name, if it is one of `known`. */
export function ownerOfChainName(name: string, known: ReadonlySet<string>): string | undefined {
  const id = CHAIN.exec(name)?.[1];
  return id !== undefined && known.has(id) ? id : undefined;
}
