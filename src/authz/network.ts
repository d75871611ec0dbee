import { BlockList, isIP } from 'node:net';
import { cidrProblem } from './config.js';

/** A frozen set of CIDRs, IPv4 and IPv6; IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) count as IPv4. */
export interface AddressSet {
  has(address: string): boolean;
}

export function addressSet(cidrs: readonly string[]): AddressSet {
  const list = new BlockList();
  for (const c of cidrs) {
    if (cidrProblem(c) !== undefined) throw new Error(`bad CIDR ${c}`);
    const [address, bits] = c.split('/') as [string, string | undefined];
    const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return {
    has(address) {
      const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
      const family = isIP(plain);
      if (family === 0) return false;
      return list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/**
 * The client address. trusted_hops 0: the peer Envoy reports. N > 0: N proxies in front of Envoy are trusted to
 * append to x-forwarded-for, so the client is the Nth entry from the right of the chain XFF + peer (Envoy with
 * use_remote_address has already appended the peer; it is not counted twice). A shorter chain means fewer proxies
 * than configured: its leftmost entry was still written by a trusted hop.
 */
export function clientAddress(sourceAddress: string, forwardedFor: string | undefined, trustedHops: number): string {
  if (trustedHops === 0 || forwardedFor === undefined || forwardedFor.trim() === '') return sourceAddress;
  const chain = forwardedFor.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (chain[chain.length - 1] !== sourceAddress) chain.push(sourceAddress);
  return chain[Math.max(0, chain.length - 1 - trustedHops)] ?? sourceAddress;
}
