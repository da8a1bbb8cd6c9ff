#!/usr/bin/env node
// The `fabric` command. Sources are TypeScript run directly by Node 24 (type stripping);
// The launcher at the clone's root (./fabric) runs this file with the project's pinned Node 24, and
// npm scripts put that Node first on the PATH.
const [major] = process.versions.node.split('.').map(Number)
if (major < 24) {
  console.error(`fabric needs Node 24 or newer (this is ${process.version}); run ./fabric at the clone's root, or node_modules/.bin/node bin/fabric.js (after npm ci)`)
  process.exit(1)
}
// Node's compile cache before the first TypeScript file, not only in main.ts: a file found in it is not
// type-stripped again, and when all are found Node never loads its TypeScript stripper (some 0.2 s of
// CPU, most of what `fabric --help` cost after its commands stopped loading their dependencies up front).
const { enableCompileCache } = await import('node:module')
enableCompileCache()
await import('../cli/main.ts')
