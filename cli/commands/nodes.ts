// `fabric nodes` and `fabric leader`: the node registry of the cluster document with what the asked
// daemon hears of each node (alive, free resources, running jobs, memory and load from the metrics
// topic), and who leads in which term.
import type { Command } from 'commander'
import { askDaemon } from '../ask-daemon.ts'
import { addConnectOptions, type ConnectFlags } from '../connect-options.ts'
import { renderTable } from '../table.ts'

export function registerNodes(program: Command): void {
  addConnectOptions(
    program
      .command('nodes')
      .description('List the nodes of the mesh: role, liveness as the asked daemon hears it, capacity, free resources, memory (RSS) and 1-minute load')
      .option('--json', 'print the listing as JSON'),
  ).action(async (flags: ConnectFlags & { json?: boolean }) => {
    const { nodes } = await askDaemon(flags, { kind: 'nodes' })
    if (flags.json === true) return console.log(JSON.stringify(nodes, null, 2))
    const rows = nodes.map((node) => [
      `${node.id}${node.self ? ' *' : ''}`,
      node.leader ? 'leader' : node.voter ? 'voter' : 'member',
      `${node.alive ? 'alive' : node.lastHeardAgoMs === null ? 'unheard' : `silent ${Math.round(node.lastHeardAgoMs / 1000)}s`}${node.draining === true ? ', draining' : ''}`,
      `${node.capacity.cpuMillis}m / ${node.capacity.memoryMiB}Mi${(node.capacity.gpuCount ?? 0) > 0 ? ` / ${node.capacity.gpuCount} GPU${node.gpu === undefined ? '' : ` ${node.gpu.model}`}` : ''}`,
      node.free === null ? '-' : `${node.free.cpuMillis}m / ${node.free.memoryMiB}Mi`,
      node.running === null ? (node.metrics === undefined ? '-' : String(node.metrics.runningJobs)) : String(node.running),
      node.metrics === undefined ? '-' : `${Math.round(node.metrics.rssBytes / 2 ** 20)}Mi`,
      node.metrics === undefined ? '-' : node.metrics.loadAverage1m.toFixed(2),
      `${node.provider}/${node.region}/${node.azId}`,
    ])
    console.log(renderTable(['NODE', 'ROLE', 'STATUS', 'CAPACITY', 'FREE', 'JOBS', 'RSS', 'LOAD', 'WHERE'], rows))
    console.log('(* the node that answered)')
  })

  addConnectOptions(
    program
      .command('leader')
      .description('Show the leader the asked daemon follows, and the term')
      .option('--json', 'print the answer as JSON'),
  ).action(async (flags: ConnectFlags & { json?: boolean }) => {
    const leader = await askDaemon(flags, { kind: 'leader' })
    if (flags.json === true) return console.log(JSON.stringify(leader, null, 2))
    if (leader.leaderId === null) console.log(`no leader known in term ${leader.term} (asked ${leader.askedNode}, a ${leader.askedRole})`)
    else if (leader.leaderId !== leader.askedNode) console.log(`${leader.leaderId} leads term ${leader.term}`)
    else console.log(`${leader.leaderId} leads term ${leader.term} (the node asked)${leader.readyLeader ? '' : '; not placing yet: it is still merging the voters\' documents'}`)
  })
}
