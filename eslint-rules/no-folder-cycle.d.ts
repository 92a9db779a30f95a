import type { Rule } from "eslint";

export interface FolderEdge {
  readonly from: string;
  readonly to: string;
  /** How many imports make the edge. */
  readonly count: number;
}

/** `from\0to` → the cycle the edge closes, from `from` back to it. */
export function closingEdges(edges: readonly FolderEdge[]): Map<string, string[]>;

declare const rule: Rule.RuleModule;
export default rule;
