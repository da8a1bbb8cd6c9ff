// Automerge actors bound to identities. A node writes with actor hex(node id) + 00 + its incarnation:
// a fresh incarnation every boot, so a restart from a disk that lost writes never reuses an (actor,
// seq) pair its peers already hold (Automerge refuses such a change forever), and the origin
// sequence of its requests starts afresh. The validator (change-validator.ts) reads the writer back
// from the actor, so a change names who wrote it; a node can only ever write as itself.
import { asNodeId, type NodeId } from './types.ts'

/** The actor of the genesis change (no node): its prefix is empty. */
export const genesisActor = '00000000'
/** Incarnations are 1 to 16 bytes of hex. */
const incarnationPattern = /^(?:[0-9a-f]{2}){1,16}$/
/** Node ids are printable ASCII (libp2p peer ids are base58; the simulator's are n000), never a 00 byte. */
const maxNodeIdBytes = 128

export function isIncarnation(value: string): boolean {
  return incarnationPattern.test(value)
}

/** The actor a node writes with in this incarnation. */
export function actorOf(nodeId: NodeId, incarnation: string): string {
  if (!isIncarnation(incarnation)) throw new Error(`assertion: incarnation ${JSON.stringify(incarnation)} is not 1 to 16 bytes of hex`)
  const bytes = new TextEncoder().encode(nodeId)
  if (bytes.length === 0 || bytes.length > maxNodeIdBytes || !/^[\x21-\x7e]+$/.test(nodeId)) throw new Error(`assertion: node id ${JSON.stringify(nodeId)} cannot name an actor`)
  let hex = ''
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0')
  return `${hex}00${incarnation}`
}

/** The node and incarnation an actor belongs to, or null (the genesis actor, or an actor no node can have). */
export function splitActor(actor: string): { node: NodeId; incarnation: string } | null {
  if (!/^(?:[0-9a-f]{2})+$/.test(actor)) return null
  let separator = -1
  for (let index = 0; index < actor.length; index += 2) {
    if (actor[index] === '0' && actor[index + 1] === '0') {
      separator = index
      break
    }
  }
  const incarnation = actor.slice(separator + 2)
  if (separator <= 0 || separator / 2 > maxNodeIdBytes || !isIncarnation(incarnation)) return null
  let text = ''
  for (let index = 0; index < separator; index += 2) text += String.fromCharCode(parseInt(actor.slice(index, index + 2), 16))
  return /^[\x21-\x7e]+$/.test(text) ? { node: asNodeId(text), incarnation } : null
}

/** The node an actor belongs to, or null. */
export function writerOf(actor: string): NodeId | null {
  return splitActor(actor)?.node ?? null
}
