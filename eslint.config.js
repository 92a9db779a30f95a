// ESLint: typescript-eslint's strict type-checked rules over the TypeScript
// (host/, test/, bench/: the files tsconfig.json includes), the untyped ones
// over the JavaScript, and this repository's rule against import cycles
// between the folders of host/ (eslint-rules/no-folder-cycle.js). Formatting is Prettier's (.prettierrc), checked by
// `npm run lint` beside this.
import { defineConfig } from "eslint/config";
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { importX } from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import globals from "globals";
import noFolderCycle from "./eslint-rules/no-folder-cycle.js";

export default defineConfig(
  {
    ignores: [
      "dist/",
      "build/",
      "run/",
      "bench/results/",
      "examples/home/",
      // AssemblyScript, compiled by asc: its i32/usize types and decorated
      // top-level functions (@external, @inline) are not TypeScript, and
      // TypeScript's parser rejects them.
      "guest-modules/**/*.ts",
      "test/fixtures/guests/",
      // Trees the rule tests read as data.
      "test/fixtures/lint/",
    ],
  },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    settings: {
      "import-x/extensions": [".ts", ".js", ".mjs"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: "tsconfig.json" })],
    },
    plugins: { local: { rules: { "no-folder-cycle": noFolderCycle } }, "import-x": importX },
    rules: {
      "local/no-folder-cycle": ["error", { root: "host" }],
      eqeqeq: ["error", "always"],
      // `_` names a value that must be bound but is not used, as tsc's noUnusedLocals allows.
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" },
      ],
      // `let x; const get = () => x; x = …` is how a value is handed to code built before it.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "separate-type-imports" }],
      "@typescript-eslint/consistent-type-exports": "error",
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
      // Numbers, booleans and regular expressions print as meant. Nullish is
      // allowed for entries read under noUncheckedIndexedAccess that are known
      // to be there; an object or `any` would print `[object Object]`.
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true, allowNullish: true, allowRegExp: true },
      ],
      "@typescript-eslint/restrict-plus-operands": ["error", { allowNumberAndString: true, allowNullish: true }],
      // Style: `() => void call()` bodies and returning a void call are how
      // the handlers here read; Prettier owns the rest of the layout.
      "@typescript-eslint/no-confusing-void-expression": "off",
      // An async function without await is how a handler or a test double
      // meets an interface that returns a promise.
      "@typescript-eslint/require-await": "off",
      // Typings declare plain functions with method syntax (node:path, ts.sys,
      // OwnerNames), so the rule cannot tell them from methods that use `this`.
      "@typescript-eslint/unbound-method": "off",
      // A flag set by a callback reads as always false to TypeScript
      // (microsoft/TypeScript#9998), so every `while (!settled)` is flagged.
      "@typescript-eslint/no-unnecessary-condition": "off",
    },
  },
  {
    // Cycles between files, type-only imports aside: where modules initialise
    // each other. A test or bench file is a leaf that nothing imports back,
    // and following the imports from each of them made the rule three times slower.
    files: ["host/**/*.ts"],
    rules: { "import-x/no-cycle": "error" },
  },
  {
    files: ["test/**/*.ts"],
    rules: {
      // Test doubles stand in for sockets and servers by shape.
      "@typescript-eslint/no-unsafe-class-instance-assignment": "off",
    },
  },
  {
    files: ["**/*.js", "**/*.mjs", "eslint-rules/*.d.ts"],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
