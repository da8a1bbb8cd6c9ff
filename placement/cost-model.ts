// The cost model: what running a job on a node costs beyond its ask price (moving the job's
// input data there, priced by an operator-changeable table) and the country groups used by
// data-sovereignty rules. Pure functions; no prices are fetched here.

/** Price per GB moved from where the data lives to the node. Operators may replace it. */
export interface TransferPriceTable {
  /** Same provider, same AZ-ID. */
  sameAzPerGB: number
  /** Same provider and region, other AZ-ID: charged on the way out and again on the way in. */
  crossAzPerGBEachWay: number
  /** Same provider, other region. */
  crossRegionPerGB: number
  /** Leaving the provider (internet egress). */
  crossProviderPerGB: number
}

export const defaultTransferPrices: TransferPriceTable = {
  sameAzPerGB: 0,
  crossAzPerGBEachWay: 0.01,
  crossRegionPerGB: 0.02,
  crossProviderPerGB: 0.09,
}

export interface CostModel {
  transfer: TransferPriceTable
  /**
   * A one-off transfer is spread over this many hours to compare it with hourly prices, when
   * the job gives no timeout (with a timeout, the timeout is the horizon).
   */
  defaultHorizonHours: number
}

export const defaultCostModel: CostModel = { transfer: defaultTransferPrices, defaultHorizonHours: 1 }

export interface Place {
  provider: string
  region: string
  azId?: string
}

export interface DataInputLike {
  location: Place
  sizeGB: number
}

/** Price of moving one GB from `from` to `to`. An unknown AZ-ID counts as another AZ. */
export function transferPricePerGB(from: Place, to: Place, table: TransferPriceTable): number {
  if (from.provider !== to.provider) return table.crossProviderPerGB
  if (from.region !== to.region) return table.crossRegionPerGB
  if (from.azId !== undefined && from.azId === to.azId) return table.sameAzPerGB
  return 2 * table.crossAzPerGBEachWay
}

/** Total price of moving all of a job's inputs to a node once. */
export function transferCost(data: readonly DataInputLike[], node: Place, table: TransferPriceTable): number {
  let total = 0
  for (const input of data) total += input.sizeGB * transferPricePerGB(input.location, node, table)
  return total
}

/** The hours a one-off cost is spread over for a job. */
export function costHorizonHours(timeoutMs: number | undefined, model: CostModel): number {
  return timeoutMs !== undefined && timeoutMs > 0 ? timeoutMs / 3_600_000 : model.defaultHorizonHours
}

/** Transfer cost expressed per hour of the job, so it adds to an hourly ask. */
export function transferCostPerHour(data: readonly DataInputLike[], node: Place, horizonHours: number, model: CostModel): number {
  if (data.length === 0) return 0
  return transferCost(data, node, model.transfer) / horizonHours
}

/** Compute for `hours` at `pricePerHour` plus moving the inputs once. */
export function totalJobCost(pricePerHour: number, hours: number, data: readonly DataInputLike[], node: Place, table: TransferPriceTable): number {
  return pricePerHour * hours + transferCost(data, node, table)
}

// ---------------------------------------------------------------------------------------------
// Sovereignty

const eu = ['AT', 'BE', 'BG', 'CY', 'CZ', 'DE', 'DK', 'EE', 'ES', 'FI', 'FR', 'GR', 'HR', 'HU', 'IE', 'IT', 'LT', 'LU', 'LV', 'MT', 'NL', 'PL', 'PT', 'RO', 'SE', 'SI', 'SK']

/** Named groups of countries a sovereignty rule may allow. */
export const countryGroups: Readonly<Record<string, readonly string[]>> = {
  EU: eu,
  EEA: [...eu, 'IS', 'LI', 'NO'],
  EFTA: ['CH', 'IS', 'LI', 'NO'],
  UK: ['GB'],
  US: ['US'],
  NA: ['CA', 'MX', 'US'],
  APAC: ['AU', 'CN', 'HK', 'ID', 'IN', 'JP', 'KR', 'MY', 'NZ', 'PH', 'SG', 'TH', 'TW', 'VN'],
}

/** The sorted set of countries allowed by explicit codes plus named groups. */
export function expandSovereignty(countries: readonly string[], groups: readonly string[]): string[] {
  const allowed = new Set<string>()
  for (const country of countries) allowed.add(country.toUpperCase())
  for (const group of groups) for (const country of countryGroups[group] ?? []) allowed.add(country)
  return [...allowed].sort()
}

/** Country of well-known cloud regions, for fleets that do not state it. */
const regionCountries: Readonly<Record<string, string>> = {
  'us-east-1': 'US', 'us-east-2': 'US', 'us-west-1': 'US', 'us-west-2': 'US',
  'ca-central-1': 'CA', 'eu-west-1': 'IE', 'eu-west-2': 'GB', 'eu-west-3': 'FR',
  'eu-central-1': 'DE', 'eu-central-2': 'CH', 'eu-north-1': 'SE', 'eu-south-1': 'IT',
  'ap-northeast-1': 'JP', 'ap-southeast-1': 'SG', 'ap-southeast-2': 'AU', 'ap-south-1': 'IN',
  'us-central1': 'US', 'us-east4': 'US', 'europe-west1': 'BE', 'europe-west3': 'DE',
  'europe-west4': 'NL', 'asia-northeast1': 'JP',
  eastus: 'US', westus2: 'US', westeurope: 'NL', northeurope: 'IE', germanywestcentral: 'DE',
}

export function countryOfRegion(region: string): string | undefined {
  return regionCountries[region]
}
