// Compile Solidity through solc-js' standard-JSON API (no compiler download).
// stdin: a standard-JSON input; stdout: the standard-JSON output. Imports are resolved
// relative to the directory given as argv[2] (the contracts folder) and nowhere else.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const base = path.resolve(process.argv[2] || ".");

function findImports(name) {
  const full = path.resolve(base, name);
  if (!full.startsWith(base + path.sep)) {
    return { error: `import outside ${base}: ${name}` };
  }
  try {
    return { contents: fs.readFileSync(full, "utf8") };
  } catch (e) {
    return { error: `cannot read ${name}: ${e.message}` };
  }
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
