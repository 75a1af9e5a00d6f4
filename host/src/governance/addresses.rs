//! Which addresses are public: the IANA special-purpose address registries.

use std::net::IpAddr;

/// Whether `ip` is a globally reachable unicast address: not in any block
/// of the IANA IPv4 and IPv6 special-purpose address registries that is not
/// globally reachable (loopback, private, shared, link-local, documentation,
/// benchmarking, reserved, site-local, unique-local, discard, ORCHID, SRv6,
/// multicast, ...). An IPv6 address that embeds an IPv4 address (mapped,
/// compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged as that
/// IPv4 address; other IPv6 addresses must be global unicast (`2000::/3`).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                // 100.64.0.0/10 shared address space
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                // 192.0.0.0/24 IETF protocol assignments
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                // 192.88.99.0/24 deprecated 6to4 relay anycast
                || (o[0] == 192 && o[1] == 88 && o[2] == 99)
                // 198.18.0.0/15 benchmarking
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                // 240.0.0.0/4 reserved
                || (o[0] & 0xf0) == 240)
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
            if seg[..5] == [0; 5]
                && (seg[5] == 0xffff || (seg[5] == 0 && !v6.is_loopback() && !v6.is_unspecified()))
            {
                return embedded(seg[6], seg[7]);
            }
            // 64:ff9b::/96 NAT64 well-known prefix.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(seg[6], seg[7]);
            }
            // 2002::/16 6to4: the IPv4 address is in bits 16..48.
            if seg[0] == 0x2002 {
                return embedded(seg[1], seg[2]);
            }
            // Only global unicast (2000::/3) can be public ...
            if (seg[0] & 0xe000) != 0x2000 {
                return false;
            }
            // ... minus its special-purpose blocks: 2001::/23 IETF protocol
            // assignments (Teredo, benchmarking, ORCHID, ...), 2001:db8::/32
            // and 3fff::/20 documentation.
            let special = (seg[0] == 0x2001 && (seg[1] < 0x0200 || seg[1] == 0x0db8))
                || (seg[0] == 0x3fff && (seg[1] & 0xf000) == 0);
            !special
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_and_embedded_addresses_are_not_public() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "0.0.0.0",
            "100.64.0.1",
            "::ffff:127.0.0.1",
            // Embedding private IPv4 space: NAT64, compatible, 6to4.
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
            "::10.0.0.1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            // Special-purpose blocks.
            "fec0::1",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.254",
            "192.0.0.8",
            "192.88.99.1",
            "64:ff9b:1::1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2001:2::1",
            "2001:20::1",
            "3fff::1",
            "5f00::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "198.20.0.1",
            "2400:cb00::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
