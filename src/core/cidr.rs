//! IPv4 CIDR blocks: parsing, overlap checks and carving subnets out of a VPC block.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation whose host bits are all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    addr: u32,
    prefix: u8,
}

/// Why a string is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not in CIDR notation (expected a.b.c.d/n)")]
    Syntax(String),
    #[error("`{0}` has a prefix length above 32")]
    Prefix(String),
    #[error("`{input}` has host bits set: did you mean `{suggestion}`?")]
    HostBits { input: String, suggestion: String },
}

impl Ipv4Net {
    /// Builds a network; host bits are masked off.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        Ipv4Net {
            addr: u32::from(addr) & mask(prefix),
            prefix,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address after this block (wrapping is impossible below /0).
    fn end(&self) -> u64 {
        u64::from(self.addr) + (1u64 << (32 - u32::from(self.prefix)))
    }

    /// The `n`th address of the block (0 is the network's), if it is inside.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        (u64::from(self.addr) + u64::from(n) < self.end()).then(|| Ipv4Addr::from(self.addr + n))
    }

    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && (other.addr & mask(self.prefix)) == self.addr
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        u64::from(self.addr) < other.end() && u64::from(other.addr) < self.end()
    }

    /// The `count` first sub-blocks of length `prefix`, or `None` when they do not fit.
    pub fn carve(&self, prefix: u8, count: usize) -> Option<Vec<Ipv4Net>> {
        if prefix < self.prefix || prefix > 32 {
            return None;
        }
        let available = 1u64 << u32::from(prefix - self.prefix);
        if count as u64 > available {
            return None;
        }
        let step = 1u64 << (32 - u32::from(prefix));
        Some(
            (0..count as u64)
                .map(|i| Ipv4Net {
                    addr: (u64::from(self.addr) + i * step) as u32,
                    prefix,
                })
                .collect(),
        )
    }

    /// True for 0.0.0.0/0.
    pub fn is_anywhere(&self) -> bool {
        self.prefix == 0
    }
}

/// Whether the blocks together cover every IPv4 address (`0.0.0.0/0`, or `0.0.0.0/1` with
/// `128.0.0.0/1`, …): the whole internet, however it is written.
pub fn cover_everything(nets: &[Ipv4Net]) -> bool {
    let mut spans: Vec<(u64, u64)> = nets.iter().map(|n| (u64::from(n.addr), n.end())).collect();
    spans.sort_unstable();
    let mut reached = 0u64;
    for (start, end) in spans {
        if start > reached {
            return false;
        }
        reached = reached.max(end);
    }
    reached >= 1u64 << 32
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| CidrError::Syntax(s.to_string()))?;
        let addr: Ipv4Addr = ip.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 2 {
            return Err(CidrError::Syntax(s.to_string()));
        }
        let prefix: u8 = len.parse().map_err(|_| CidrError::Syntax(s.to_string()))?;
        if prefix > 32 {
            return Err(CidrError::Prefix(s.to_string()));
        }
        let net = Ipv4Net::new(addr, prefix);
        if u32::from(addr) != net.addr {
            return Err(CidrError::HostBits {
                input: s.to_string(),
                suggestion: net.to_string(),
            });
        }
        Ok(net)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(net("10.0.0.0/16").to_string(), "10.0.0.0/16");
        assert!(matches!(
            "10.0.0.1/16".parse::<Ipv4Net>(),
            Err(CidrError::HostBits { .. })
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<Ipv4Net>(),
            Err(CidrError::Prefix(_))
        ));
        for bad in [
            "10.0.0.0",
            "10.0.0/16",
            "a.b.c.d/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/0",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn carves_consecutive_blocks() {
        let got = net("10.0.0.0/16").carve(20, 3).unwrap();
        let got: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]);
        assert!(net("10.0.0.0/27").carve(28, 3).is_none());
        assert!(net("10.0.0.0/27").carve(26, 1).is_none());
    }

    #[test]
    fn overlap_and_containment() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.244.0.0/16")));
        assert!(!net("10.0.0.0/16").overlaps(&net("10.1.0.0/16")));
        assert!(net("10.0.0.0/16").contains_net(&net("10.0.16.0/20")));
        assert!(!net("10.0.16.0/20").contains_net(&net("10.0.0.0/16")));
        assert!(net("0.0.0.0/0").is_anywhere());
        assert!(cover_everything(&[net("0.0.0.0/1"), net("128.0.0.0/1")]));
        assert!(cover_everything(&[
            net("128.0.0.0/2"),
            net("0.0.0.0/1"),
            net("192.0.0.0/2")
        ]));
        assert!(!cover_everything(&[net("0.0.0.0/1"), net("128.0.0.0/2")]));
        assert!(!cover_everything(&[]));
    }
}
