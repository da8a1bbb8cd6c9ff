// Attributes an operator gives a node (flags or the config file): labels that job constraints match,
// and the placement group and EFA flag that make nodes of one zone an island for tightly-coupled
// gangs. Checked here so a bad one stops the daemon at start with the flag named, not in gossip.
import { maxLabels, maxNameLength } from './wire.ts'

/** Labels the daemon sets itself (runtime-selector.ts): an operator may not claim them. */
export const reservedLabelKeys: ReadonlySet<string> = new Set(['runtime.docker'])
/** A label key: DNS-ish, as Kubernetes label keys (an optional prefix with a slash, then a name). */
const labelKeyPattern = /^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/
const labelValuePattern = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/
const groupPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export class NodeAttributeError extends Error {
  override name = 'NodeAttributeError'
}

/** `key=value` pairs (repeatable --label) into a label map; the first problem throws, naming the pair. */
export function parseLabels(pairs: readonly string[], source = '--label'): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    if (at <= 0) throw new NodeAttributeError(`${source}: "${pair.slice(0, 80)}" is not key=value`)
    const [key, value] = [pair.slice(0, at), pair.slice(at + 1)]
    checkLabel(key, value, source)
    if (Object.hasOwn(labels, key) && labels[key] !== value) throw new NodeAttributeError(`${source}: label ${key} given twice (${labels[key]} and ${value})`)
    labels[key] = value
  }
  if (Object.keys(labels).length > maxLabels - reservedLabelKeys.size) throw new NodeAttributeError(`${source}: at most ${maxLabels - reservedLabelKeys.size} labels`)
  return labels
}

export function checkLabel(key: string, value: string, source: string): void {
  if (!labelKeyPattern.test(key)) throw new NodeAttributeError(`${source}: label key "${key.slice(0, 80)}" must be 1-63 letters, digits, '.', '_', '-' or '/', starting and ending with a letter or digit`)
  if (reservedLabelKeys.has(key)) throw new NodeAttributeError(`${source}: label ${key} is set by the daemon itself`)
  if (!labelValuePattern.test(value)) throw new NodeAttributeError(`${source}: label ${key}'s value "${value.slice(0, 80)}" must be at most 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit`)
}

/** A placement group name (AWS cluster placement groups, or any operator's name for nodes of one low-latency fabric). */
export function checkPlacementGroup(name: string, source = '--placement-group'): string {
  if (!groupPattern.test(name) || name.length > maxNameLength) throw new NodeAttributeError(`${source}: "${name.slice(0, 80)}" must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  return name
}
