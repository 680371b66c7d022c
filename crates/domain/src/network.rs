//! Which addresses wagate may connect to: CIDR ranges, the non-public address ranges, and the
//! policy that refuses them unless an allow-list names them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A range of addresses, `10.0.0.0/8` or `::1/128`; a bare address is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Why a text is not a CIDR range; names the text and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let text = s.trim();
        let invalid =
            |why: &str| CidrError(format!("'{text}' is not a CIDR range such as 10.0.0.0/8 or ::1/128: {why}"));
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| invalid("the address is not an IPv4 or IPv6 address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| invalid(&format!("the prefix length must be 0 to {max}")))?,
        };
        let cidr = Cidr { network, prefix };
        let canonical = Cidr { network: masked(network, prefix), prefix };
        if canonical != cidr {
            // Ambiguous: a host meant alone, or the range around it.
            return Err(invalid(&format!("bits are set after the prefix; the range is {canonical}")));
        }
        Ok(cidr)
    }
}

/// `ip` with every bit after the first `prefix` cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Why an address is not a public internet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonPublic {
    Unspecified,
    /// 0.0.0.0/8: "this network"; connecting to it reaches the host itself on some systems.
    ThisNetwork,
    Loopback,
    /// RFC 1918 (and IPv6 site-local, which it replaced).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT: a provider's internal network.
    SharedAddressSpace,
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    Broadcast,
    Multicast,
    /// IETF protocol assignments, benchmarking, and the former class E.
    Reserved,
}

impl fmt::Display for NonPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "unspecified",
            Self::ThisNetwork => "this-network (0.0.0.0/8)",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared (carrier-grade NAT)",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Broadcast => "broadcast",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
        })
    }
}

/// IPv4 ranges that are not public, most specific first where they overlap.
const V4_RANGES: &[([u8; 4], u8, NonPublic)] = &[
    ([0, 0, 0, 0], 32, NonPublic::Unspecified),
    ([255, 255, 255, 255], 32, NonPublic::Broadcast),
    ([0, 0, 0, 0], 8, NonPublic::ThisNetwork),
    ([10, 0, 0, 0], 8, NonPublic::Private),
    ([100, 64, 0, 0], 10, NonPublic::SharedAddressSpace),
    ([127, 0, 0, 0], 8, NonPublic::Loopback),
    ([169, 254, 0, 0], 16, NonPublic::LinkLocal),
    ([172, 16, 0, 0], 12, NonPublic::Private),
    ([192, 0, 0, 0], 24, NonPublic::Reserved),
    ([192, 168, 0, 0], 16, NonPublic::Private),
    ([198, 18, 0, 0], 15, NonPublic::Reserved),
    ([224, 0, 0, 0], 4, NonPublic::Multicast),
    ([240, 0, 0, 0], 4, NonPublic::Reserved),
];

/// IPv6 ranges that are not public, besides those that carry an IPv4 address.
const V6_RANGES: &[(u128, u8, NonPublic)] = &[
    (0, 128, NonPublic::Unspecified),
    (1, 128, NonPublic::Loopback),
    (0xfe80 << 112, 10, NonPublic::LinkLocal),
    (0xfec0 << 112, 10, NonPublic::Private),
    (0xfc00 << 112, 7, NonPublic::UniqueLocal),
    (0xff00 << 112, 8, NonPublic::Multicast),
];

/// The IPv4 address an IPv6 address carries, where routing may deliver it to that IPv4 host:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96` and the
/// local-use `64:ff9b:1::/48`) and 6to4 (`2002:AABB:CCDD::/48`).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    let s = ip.segments();
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low32),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, _, _] if bits > 1 => Some(low32),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => Some(low32),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// Why `ip` is not a public internet address, or None when it is one. An IPv6 address that
/// carries an IPv4 address is judged as that IPv4 address.
pub fn non_public(ip: IpAddr) -> Option<NonPublic> {
    let within = |network: IpAddr, prefix: u8| Cidr { network, prefix }.contains(ip);
    match ip {
        IpAddr::V4(_) => V4_RANGES
            .iter()
            .find(|(net, prefix, _)| within(IpAddr::V4(Ipv4Addr::from(*net)), *prefix))
            .map(|(_, _, kind)| *kind),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => non_public(IpAddr::V4(v4)),
            None => V6_RANGES
                .iter()
                .find(|(net, prefix, _)| within(IpAddr::V6(Ipv6Addr::from(*net)), *prefix))
                .map(|(_, _, kind)| *kind),
        },
    }
}

/// Outbound connections go to public addresses, and to non-public ones only inside the
/// allow-list (`[network] allow_private`).
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    allow_private: Vec<Cidr>,
}

impl AddressPolicy {
    pub fn new(allow_private: Vec<Cidr>) -> Self {
        Self { allow_private }
    }

    /// Ok for an address wagate may connect to; otherwise why not. An IPv6 address carrying an
    /// IPv4 address is allowed by a range holding either.
    pub fn check(&self, ip: IpAddr) -> Result<(), NonPublic> {
        let Some(kind) = non_public(ip) else { return Ok(()) };
        let carried = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed = self.allow_private.iter().any(|c| c.contains(ip) || carried.is_some_and(|v4| c.contains(v4)));
        if allowed { Ok(()) } else { Err(kind) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")), "an IPv4 range holds no IPv6 address");
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(!cidr("::1/128").contains(ip("::2")));
        assert!(cidr("fd00::/8").contains(ip("fd12:3456::1")));
        assert!(cidr("::/0").contains(ip("2a03:2880::1")));
        assert_eq!(cidr("192.168.1.7"), cidr("192.168.1.7/32"), "a bare address is a range of one");
        assert_eq!(cidr(" 127.0.0.0/8 ").to_string(), "127.0.0.0/8");
        assert_eq!(cidr("fe80::/10").to_string(), "fe80::/10");
    }

    #[test]
    fn bad_cidrs_are_named_with_the_rule() {
        for (text, rule) in [
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0.0/", "0 to 32"),
            ("10.0.0.0/-1", "0 to 32"),
            ("localhost/8", "not an IPv4 or IPv6 address"),
            ("", "not an IPv4 or IPv6 address"),
            ("10.0.0.1/8", "the range is 10.0.0.0/8"),
            ("fe80::1/10", "the range is fe80::/10"),
        ] {
            let e = text.parse::<Cidr>().unwrap_err().to_string();
            assert!(e.contains(&format!("'{}'", text.trim())) && e.contains(rule), "{text}: {e}");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for a in [
            "157.240.22.35",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "223.255.255.255",
            "2a03:2880:f12f:83:face:b00c:0:25de",
            "2001:4860:4860::8888",
            "::ffff:157.240.22.35",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(non_public(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn non_public_ranges_are_named() {
        use NonPublic::*;
        for (a, kind) in [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("0.0.0.0", Unspecified),
            ("::", Unspecified),
            ("0.1.2.3", ThisNetwork),
            ("255.255.255.255", Broadcast),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("fc00::1", UniqueLocal),
            ("fd12:3456:789a::1", UniqueLocal),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("240.0.0.1", Reserved),
        ] {
            assert_eq!(non_public(ip(a)), Some(kind), "{a}");
        }
    }

    #[test]
    fn ipv6_addresses_carrying_ipv4_are_judged_as_that_ipv4() {
        use NonPublic::*;
        for (a, kind) in [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b:1::c0a8:101", Private),
            ("2002:7f00:1::1", Loopback),
            ("2002:a00:1::", Private),
            ("2002:a9fe:a9fe::1", LinkLocal),
            ("::ffff:0.0.0.0", Unspecified),
        ] {
            assert_eq!(non_public(ip(a)), Some(kind), "{a}");
        }
        assert_eq!(embedded_ipv4("2002:c0a8:101::1".parse().unwrap()), Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(embedded_ipv4("2a03:2880::1".parse().unwrap()), None);
        assert_eq!(embedded_ipv4("::1".parse().unwrap()), None, "IPv6's own loopback");
    }

    #[test]
    fn the_policy_refuses_non_public_addresses_outside_its_allow_list() {
        let none = AddressPolicy::default();
        assert_eq!(none.check(ip("157.240.22.35")), Ok(()));
        assert_eq!(none.check(ip("127.0.0.1")), Err(NonPublic::Loopback));
        assert_eq!(none.check(ip("::ffff:127.0.0.1")), Err(NonPublic::Loopback));

        let loopback = AddressPolicy::new(vec![cidr("127.0.0.0/8"), cidr("::1/128")]);
        for allowed in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1", "8.8.8.8"] {
            assert_eq!(loopback.check(ip(allowed)), Ok(()), "{allowed}");
        }
        for (refused, kind) in [
            ("10.0.0.1", NonPublic::Private),
            ("169.254.169.254", NonPublic::LinkLocal),
            ("::ffff:10.0.0.1", NonPublic::Private),
            ("fe80::1", NonPublic::LinkLocal),
            ("0.0.0.0", NonPublic::Unspecified),
        ] {
            assert_eq!(loopback.check(ip(refused)), Err(kind), "{refused}");
        }
        let one_host = AddressPolicy::new(vec![cidr("10.1.2.3")]);
        assert_eq!(one_host.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(one_host.check(ip("10.1.2.4")), Err(NonPublic::Private));
    }
}
