import * as ipaddr from "ipaddr.js"
import { lookup } from "node:dns"
import type { LookupAddress, LookupOptions } from "node:dns"
import * as net from "node:net"

/**
 * A host as it is compared: lower-case, without brackets or a trailing dot, an IP address in one
 * spelling (WHATWG URL rules, so `0x7f.1` and `2130706433` are `127.0.0.1`; `::ffff:a.b.c.d` is `a.b.c.d`).
 */
export const canonicalHost = (raw: string): string => {
  let host = raw.toLowerCase().replace(/^\[(.*)\]$/, "$1")
  const bracketed = net.isIPv6(host) ? `[${host}]` : host
  try {
    host = new URL(`http://${bracketed}/`).hostname.replace(/^\[(.*)\]$/, "$1")
  } catch {
    // Not a host a URL takes (a `*.` entry, say): compared as written.
  }
  host = host.replace(/\.$/, "")
  return net.isIP(host) === 0 ? host : ipaddr.process(host).toString()
}

/**
 * Only public unicast addresses: a name an agent or a webhook may reach must not lead, by its DNS
 * answer, to the gateway, the database or anything else on the host's networks (loopback, private,
 * link-local, unspecified, multicast, CGNAT, reserved ranges and IPv4-mapped forms of them).
 */
export const isPublicAddress = (address: string): boolean =>
  ipaddr.isValid(address) && ipaddr.process(address).range() === "unicast"

/** The class of a non-public address as people read it (`loopback`, `private`, ...). */
export const addressRange = (address: string): string =>
  ipaddr.isValid(address) ? ipaddr.process(address).range() : "invalid"

/** A connection refused because its host resolved to a non-public address. */
export class NonPublicAddress extends Error {
  readonly code = "ENONPUBLIC"
  constructor(readonly host: string, readonly address: string) {
    super(`${host} resolves to ${address} (${addressRange(address)}), not a public address`)
  }
}

/**
 * A `lookup` for `net.connect` and HTTP agents that resolves the name once and hands the socket only
 * addresses it checked: any non-public address in the answer refuses the connection (a name that
 * answers with a public and a private address is no safer than the private one).
 */
export const publicOnlyLookup = (
  hostname: string,
  options: LookupOptions,
  callback: (error: NodeJS.ErrnoException | null, address: string | Array<LookupAddress>, family?: number) => void
): void => {
  lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error !== null) return callback(error, "")
    const refused = addresses.find((entry) => !isPublicAddress(entry.address))
    if (refused !== undefined) return callback(new NonPublicAddress(hostname, refused.address), "")
    if (options.all === true) return callback(null, addresses)
    const first = addresses[0]!
    callback(null, first.address, first.family)
  })
}
