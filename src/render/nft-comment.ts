// nft refuses comments over 128 characters, and "ns/name:port" can reach 191. Both
// renderers cut them here; comments are for reading, identity lives in the IR.
const NFT_COMMENT_MAX = 128;

export function nftComment(s: string): string {
  return s.length <= NFT_COMMENT_MAX ? s : `${s.slice(0, NFT_COMMENT_MAX - 3)}...`;
}
