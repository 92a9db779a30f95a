/**
 * no-folder-cycle: no import cycle between the folders directly under a root
 * (host/ here). A file host/a/x.ts importing host/b/y.ts is an edge a → b;
 * files at the root itself (host/index.ts, host/errors.ts) belong to no folder
 * and make no edge. Of each cycle, the edge made by the fewest imports is the
 * one blamed (closingEdges): each import making it is reported with the cycle
 * it closes, so a cycle shows up once, at the imports most likely to point the
 * wrong way, rather than at every import along it.
 *
 * ESLint sees one file at a time, so the graph comes from the files on disk
 * (imports, `import type`, `export … from` and `import()` alike, as read by
 * TypeScript's preProcessFile), read once per run and again only for a file
 * whose mtime changed; the linted file's own imports are taken from its
 * source text, so an edit is judged before it is saved.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

const SOURCE = /\.(?:[cm]?ts|[cm]?js)$/;
const DECLARATION = /\.d\.[cm]?ts$/;

/** The specifiers a source text imports, exports from or loads with import(). */
function importedSpecifiers(text) {
  return ts.preProcessFile(text, true, true).importedFiles.map((ref) => ref.fileName);
}

/** The folder directly under `root` holding `file`, or undefined for the root's own files and files outside it. */
function folderOf(root, file) {
  const relative = path.relative(root, file);
  if (relative.startsWith("..") || path.isAbsolute(relative)) return undefined;
  const parts = relative.split(path.sep);
  return parts.length > 1 ? parts[0] : undefined;
}

function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (SOURCE.test(entry.name) && !DECLARATION.test(entry.name)) out.push(full);
  }
  return out;
}

/** root → (file → { mtimeMs, targets }): how many imports each file makes from each other folder. */
const graphs = new Map();

function fileEdges(root, file, specifiers) {
  const from = folderOf(root, file);
  const targets = new Map();
  if (from === undefined) return targets;
  for (const specifier of specifiers.filter((name) => name.startsWith("."))) {
    const to = folderOf(root, path.resolve(path.dirname(file), specifier));
    if (to !== undefined && to !== from) targets.set(to, (targets.get(to) ?? 0) + 1);
  }
  return targets;
}

/** The edges of every file under root, reading again only the files changed since the last call. */
function graphFor(root) {
  const known = graphs.get(root) ?? new Map();
  const graph = new Map();
  for (const file of sourceFiles(root)) {
    const { mtimeMs } = statSync(file);
    const cached = known.get(file);
    graph.set(
      file,
      cached !== undefined && cached.mtimeMs === mtimeMs
        ? cached
        : { mtimeMs, targets: fileEdges(root, file, importedSpecifiers(readFileSync(file, "utf8"))) },
    );
  }
  graphs.set(root, graph);
  return graph;
}

/** Every folder edge with its number of imports, `file`'s own taken from `ownEdges` rather than from disk. */
function folderEdges(root, file, ownEdges) {
  const weights = new Map();
  const add = (source, targets) => {
    const from = folderOf(root, source);
    if (from === undefined) return;
    for (const [to, count] of targets) {
      const key = `${from}\0${to}`;
      weights.set(key, (weights.get(key) ?? 0) + count);
    }
  };
  for (const [source, { targets }] of graphFor(root)) if (source !== file) add(source, targets);
  add(file, ownEdges);
  return [...weights].map(([key, count]) => {
    const [from, to] = key.split("\0");
    return { from, to, count };
  });
}

/** The shortest path of folders from `start` to `goal`, or undefined when there is none. */
function pathBetween(adjacency, start, goal) {
  const previous = new Map([[start, undefined]]);
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const at = queue[i];
    if (at === goal) {
      const out = [];
      for (let step = at; step !== undefined; step = previous.get(step)) out.unshift(step);
      return out;
    }
    for (const next of [...(adjacency.get(at) ?? [])].sort()) {
      if (!previous.has(next)) {
        previous.set(next, at);
        queue.push(next);
      }
    }
  }
  return undefined;
}

/**
 * The edges that close cycles, each with the cycle it closes: edges are kept
 * from the most imports to the fewest (then by name), and an edge whose target
 * already reaches its source through kept edges closes a cycle. So of the
 * edges of a cycle the one carried by the fewest imports is blamed, which is
 * most often the one pointing the wrong way.
 */
export function closingEdges(edges) {
  const ordered = [...edges].sort(
    (a, b) => b.count - a.count || a.from.localeCompare(b.from) || a.to.localeCompare(b.to),
  );
  const kept = new Map();
  const closing = new Map();
  for (const { from, to } of ordered) {
    const back = pathBetween(kept, to, from);
    if (back === undefined) kept.set(from, (kept.get(from) ?? new Set()).add(to));
    else closing.set(`${from}\0${to}`, [from, ...back]);
  }
  return closing;
}

/** @type {import("eslint").Rule.RuleModule} */
export default {
  meta: {
    type: "problem",
    docs: { description: "Disallow imports that close an import cycle between folders under a root" },
    schema: [
      {
        type: "object",
        properties: { root: { type: "string" } },
        required: ["root"],
        additionalProperties: false,
      },
    ],
    messages: {
      cycle: "Import from {{to}}/ closes a folder cycle: {{cycle}}.",
    },
  },
  create(context) {
    const root = path.resolve(context.cwd, context.options[0].root);
    const file = path.resolve(context.cwd, context.filename);
    const from = folderOf(root, file);
    if (from === undefined) return {};
    const imports = [];
    const record = (node) => {
      const source = node.source;
      if (source?.type === "Literal" && typeof source.value === "string" && source.value.startsWith(".")) {
        imports.push(node);
      }
    };
    return {
      ImportDeclaration: record,
      ExportAllDeclaration: record,
      ExportNamedDeclaration: record,
      ImportExpression: record,
      "Program:exit"() {
        const specifiers = imports.map((node) => node.source.value);
        const own = fileEdges(root, file, specifiers);
        if (own.size === 0) return;
        const closing = closingEdges(folderEdges(root, file, own));
        for (const node of imports) {
          const to = folderOf(root, path.resolve(path.dirname(file), node.source.value));
          const cycle = closing.get(`${from}\0${to}`);
          if (cycle === undefined) continue;
          context.report({ node: node.source, messageId: "cycle", data: { to, cycle: cycle.join(" → ") } });
        }
      },
    };
  },
};
