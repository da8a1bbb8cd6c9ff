// Entry point of the `fabric` command. The daemon's process settings come first (they may replace
// this process before anything else loads); then the command tree (program.ts).
import { tuneDaemonProcess } from './daemon-tuning.ts'

tuneDaemonProcess(process.argv)
await import('./program.ts')
