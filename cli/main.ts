// Entry point of the `fabric` command. The daemon's process settings come first (they may replace
// this process before anything else loads); then the command tree (program.ts).
import { enableCompileCache } from 'node:module'
import { tuneDaemonProcess } from './daemon-tuning.ts'

// Node's compile cache (in the OS temp folder, keyed by each file's content) keeps the type-stripped
// and compiled modules: `fabric --help` went from 0.97 to 0.37 s here, and every CLI call and daemon
// start gains the same (a daemon's resident memory is unchanged by it, within 2 MiB). bin/fabric.js
// enables it before this file loads; this call serves what starts here (npm scripts, tests, daemons).
enableCompileCache()
tuneDaemonProcess(process.argv)
await import('./program.ts')
