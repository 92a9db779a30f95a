// Embedding the host in a Node program: `node examples/embed.mjs` after `npm run build`.
// It loads the example library and a module that uses it, and shows how the
// global scope resolved a symbol. The package imports itself by name.
import { fileURLToPath } from "node:url";
import { ModuleHost } from "wasm-dso";

const modulePath = fileURLToPath(new URL("../dist/libexec", import.meta.url));
const host = new ModuleHost({ modulePath });

host.loadFile(`${modulePath}/libmath.wasm`);
host.loadModule("mod_calc.c");
console.log("modules:", host.listModules().join(", "));

const symbol = host.lookup("math_add");
console.log(`math_add: ${symbol.type} from ${symbol.provider} (${symbol.providerKind})`);

// dlsym: the winning definition itself, callable from JavaScript.
console.log("math_add(2, 3) =", host.dlsym("math_add")(2, 3));

try {
  host.loadModule("mod_calc.c");
} catch (error) {
  console.log("loading it again:", error.code, "-", error.message);
}

host.unloadModule("mod_calc.c");
console.log("after rmmod:", host.listModules().length, "modules");
host.close();
