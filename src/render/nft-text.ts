// IR -> nft text, the form `nft -f -` loads and `nftproxy dump` prints. Laid out like
// `nft list ruleset`. One transaction: "add table" then "delete table" then the table, so it
// creates the table when missing and replaces all of it otherwise, and never touches another
// table. The text comes from the same kernel objects the netlink writer sends
// (render/kernel), so what people read is what the kernel got.
import type { Ruleset } from '../ir/types.js';
import { kernelFamilyOfTable } from './kernel/family.js';
import { tablesText } from './kernel/text.js';

export function renderText(rs: Ruleset): string {
  return tablesText(rs.tables.map(kernelFamilyOfTable));
}
