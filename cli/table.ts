// Plain aligned columns for the CLI's listings (every listing also has --json for machines).

export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: readonly string[]): string => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

/** A peer id is long and its first characters are all alike (12D3KooW...): show its end. */
export function shortId(id: string | null): string {
  if (id === null) return '-'
  return id.length > 12 ? `…${id.slice(-8)}` : id
}

export function ago(atMs: number | null, nowMs: number): string {
  if (atMs === null) return '-'
  const seconds = Math.max(0, Math.round((nowMs - atMs) / 1000))
  if (seconds < 90) return `${seconds}s ago`
  const minutes = Math.round(seconds / 60)
  if (minutes < 90) return `${minutes}m ago`
  const hours = Math.round(minutes / 60)
  return hours < 48 ? `${hours}h ago` : `${Math.round(hours / 24)}d ago`
}
