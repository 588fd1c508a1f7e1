//! Validators: checksum and plausibility tests a regex match must pass to become a finding.
//!
//! Takes the matched bytes (the `value` group when the detector has one); gives `true` when the
//! value is plausible. Parsing a validator name from a pattern file fails with a message that
//! lists the known names. Validators never allocate; `ipv6` parses through `std::net`, `ipv4`
//! accepts exactly what `std::net::Ipv4Addr` parses (tested against it).

use std::fmt;
use std::str::FromStr;

/// A check run on a match after the regex, before context and allow-list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    /// Luhn (mod 10) over the digits; 12 to 19 digits. Payment cards.
    Luhn,
    /// IBAN: known country code, that country's length, ISO 7064 mod 97 == 1.
    Mod97,
    /// US SSN: area not 000, 666 or 9xx; group not 00; serial not 0000; not a well-known
    /// advertising or sample number; not one repeated digit.
    Ssn,
    /// ABA routing number: valid Federal Reserve prefix and the 3-7-1 checksum.
    Aba,
    /// Shannon entropy of the value in bits per byte is at least this.
    Entropy(f64),
    /// A dotted-quad IPv4 address without leading zeros.
    Ipv4,
    /// An IPv6 address as `std::net::Ipv6Addr` parses it, not `::`, with at least one digit.
    Ipv6,
    /// The value holds between `min` and `max` decimal digits (`digits 8..15`).
    Digits(u8, u8),
}

impl FromStr for Validator {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "luhn" => return Ok(Validator::Luhn),
            "mod97" => return Ok(Validator::Mod97),
            "ssn" => return Ok(Validator::Ssn),
            "aba" => return Ok(Validator::Aba),
            "ipv4" => return Ok(Validator::Ipv4),
            "ipv6" => return Ok(Validator::Ipv6),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("digits ") {
            let bad = || format!("bad validator `{s}`: write `digits 8..15`");
            let (lo, hi) = rest.trim().split_once("..").ok_or_else(bad)?;
            let lo: u8 = lo.trim().parse().map_err(|_| bad())?;
            let hi: u8 = hi.trim().parse().map_err(|_| bad())?;
            return if lo <= hi {
                Ok(Validator::Digits(lo, hi))
            } else {
                Err(bad())
            };
        }
        if let Some(rest) = s.strip_prefix("entropy") {
            let rest = rest.trim_start();
            let Some(num) = rest.strip_prefix(">=") else {
                return Err(format!("bad validator `{s}`: write `entropy >= 3.5`"));
            };
            return match num.trim().parse::<f64>() {
                Ok(x) if (0.0..=8.0).contains(&x) => Ok(Validator::Entropy(x)),
                _ => Err(format!(
                    "bad validator `{s}`: the entropy threshold is bits per byte, 0 to 8"
                )),
            };
        }
        Err(format!(
            "unknown validator `{s}`; known: luhn, mod97, ssn, aba, ipv4, ipv6, digits A..B, entropy >= X"
        ))
    }
}

impl fmt::Display for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validator::Luhn => f.write_str("luhn"),
            Validator::Mod97 => f.write_str("mod97"),
            Validator::Ssn => f.write_str("ssn"),
            Validator::Aba => f.write_str("aba"),
            Validator::Entropy(x) => write!(f, "entropy >= {x}"),
            Validator::Ipv4 => f.write_str("ipv4"),
            Validator::Ipv6 => f.write_str("ipv6"),
            Validator::Digits(lo, hi) => write!(f, "digits {lo}..{hi}"),
        }
    }
}

impl Validator {
    /// Whether `value` passes.
    pub fn check(&self, value: &[u8]) -> bool {
        match self {
            Validator::Luhn => luhn(value),
            Validator::Mod97 => iban(value),
            Validator::Ssn => ssn(value),
            Validator::Aba => aba(value),
            Validator::Entropy(min) => entropy(value) >= *min,
            Validator::Ipv4 => ipv4(value),
            Validator::Ipv6 => {
                value.iter().any(u8::is_ascii_digit)
                    && parse_ip::<std::net::Ipv6Addr>(value).is_some_and(|a| !a.is_unspecified())
            }
            Validator::Digits(lo, hi) => {
                let n = value.iter().filter(|b| b.is_ascii_digit()).count();
                (usize::from(*lo)..=usize::from(*hi)).contains(&n)
            }
        }
    }
}

/// The decimal digits of `value` (separators skipped) into `buf`; `None` when more than
/// `buf.len()` digits or a byte other than a digit, space, dash or dot.
fn digits<'b>(value: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut n = 0;
    for &b in value {
        match b {
            b'0'..=b'9' => {
                *buf.get_mut(n)? = b - b'0';
                n += 1;
            }
            b' ' | b'-' | b'.' => {}
            _ => return None,
        }
    }
    Some(&buf[..n])
}

fn luhn(value: &[u8]) -> bool {
    let mut buf = [0u8; 19];
    let Some(d) = digits(value, &mut buf) else {
        return false;
    };
    if d.len() < 12 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn ssn(value: &[u8]) -> bool {
    let mut buf = [0u8; 9];
    let Some(d) = digits(value, &mut buf) else {
        return false;
    };
    if d.len() != 9 {
        return false;
    }
    let num = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let (area, group, serial) = (num(0..3), num(3..5), num(5..9));
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    let whole = num(0..9);
    // Woolworth's wallet card, an advertising sample, the canonical "123-45-6789".
    if matches!(whole, 78_051_120 | 219_099_999 | 123_456_789) {
        return false;
    }
    !d.iter().all(|&x| x == d[0])
}

fn aba(value: &[u8]) -> bool {
    let mut buf = [0u8; 9];
    let Some(d) = digits(value, &mut buf) else {
        return false;
    };
    if d.len() != 9 {
        return false;
    }
    let prefix = d[0] * 10 + d[1];
    if !matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80) {
        return false;
    }
    let w = |i: usize| u32::from(d[i]);
    let sum = 3 * (w(0) + w(3) + w(6)) + 7 * (w(1) + w(4) + w(7)) + (w(2) + w(5) + w(8));
    sum % 10 == 0 && !d.iter().all(|&x| x == 0)
}

/// IBAN lengths per country (SWIFT IBAN registry).
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20), (b"BE", 16),
    (b"BG", 22), (b"BH", 22), (b"BI", 27), (b"BR", 29), (b"BY", 28), (b"CH", 21), (b"CR", 22),
    (b"CY", 28), (b"CZ", 24), (b"DE", 22), (b"DJ", 27), (b"DK", 18), (b"DO", 28), (b"EE", 20),
    (b"EG", 29), (b"ES", 24), (b"FI", 18), (b"FK", 18), (b"FO", 18), (b"FR", 27), (b"GB", 22),
    (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GR", 27), (b"GT", 28), (b"HR", 21), (b"HU", 28),
    (b"IE", 22), (b"IL", 23), (b"IQ", 23), (b"IS", 26), (b"IT", 27), (b"JO", 30), (b"KW", 30),
    (b"KZ", 20), (b"LB", 28), (b"LC", 32), (b"LI", 21), (b"LT", 20), (b"LU", 20), (b"LV", 21),
    (b"LY", 25), (b"MC", 27), (b"MD", 24), (b"ME", 22), (b"MK", 19), (b"MN", 20), (b"MR", 27),
    (b"MT", 31), (b"MU", 30), (b"NI", 28), (b"NL", 18), (b"NO", 15), (b"OM", 23), (b"PK", 24),
    (b"PL", 28), (b"PS", 29), (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22), (b"RU", 33),
    (b"SA", 24), (b"SC", 31), (b"SD", 18), (b"SE", 24), (b"SI", 19), (b"SK", 24), (b"SM", 27),
    (b"SO", 23), (b"ST", 25), (b"SV", 28), (b"TL", 23), (b"TN", 24), (b"TR", 26), (b"UA", 29),
    (b"VA", 22), (b"VG", 24), (b"XK", 20), (b"YE", 30),
];

fn iban(value: &[u8]) -> bool {
    let mut buf = [0u8; 34];
    let mut n = 0;
    for &b in value {
        match b {
            b' ' => {}
            b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => {
                let Some(slot) = buf.get_mut(n) else {
                    return false;
                };
                *slot = b.to_ascii_uppercase();
                n += 1;
            }
            _ => return false,
        }
    }
    let s = &buf[..n];
    if n < 15
        || !s[..2].iter().all(u8::is_ascii_uppercase)
        || !s[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let country = [s[0], s[1]];
    if !IBAN_LENGTHS
        .iter()
        .any(|(c, len)| **c == country && *len == n)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in s[4..].iter().chain(&s[..4]) {
        if b.is_ascii_digit() {
            rem = (rem * 10 + u32::from(b - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(b - b'A' + 10)) % 97;
        }
    }
    rem == 1
}

/// Shannon entropy in bits per byte.
pub fn entropy(value: &[u8]) -> f64 {
    if value.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in value {
        counts[usize::from(b)] += 1;
    }
    let n = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// What `std::net::Ipv4Addr` parses, without its UTF-8 check and generic parser: four decimal
/// octets separated by dots, each at most 255, none with a leading zero (`0` alone is fine).
fn ipv4(value: &[u8]) -> bool {
    let mut parts = value.split(|&b| b == b'.');
    for _ in 0..4 {
        let Some(part) = parts.next() else {
            return false;
        };
        let (Some(&first), mut n) = (part.first(), 0u32) else {
            return false;
        };
        for &b in part {
            if !b.is_ascii_digit() {
                return false;
            }
            n = n * 10 + u32::from(b - b'0');
            if n > 255 {
                return false;
            }
        }
        if first == b'0' && part.len() > 1 {
            return false;
        }
    }
    parts.next().is_none()
}

fn parse_ip<T: FromStr>(value: &[u8]) -> Option<T> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_accept_valid_and_reject_invalid_values() {
        let v = |s: &str| s.parse::<Validator>().unwrap();
        assert!(v("luhn").check(b"4111 1111 1111 1111"));
        assert!(!v("luhn").check(b"4111 1111 1111 1112"));
        assert!(!v("luhn").check(b"41111"));
        assert!(v("mod97").check(b"GB82 WEST 1234 5698 7654 32"));
        assert!(v("mod97").check(b"DE89370400440532013000"));
        assert!(!v("mod97").check(b"DE89370400440532013001"));
        assert!(
            !v("mod97").check(b"DE8937040044053201300"),
            "wrong length for DE"
        );
        assert!(v("ssn").check(b"536-22-8845"));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "536-00-8845",
            "536-22-0000",
        ] {
            assert!(!v("ssn").check(bad.as_bytes()), "{bad}");
        }
        assert!(!v("ssn").check(b"078-05-1120"));
        assert!(!v("ssn").check(b"111111111"));
        assert!(v("aba").check(b"011000015"));
        assert!(v("aba").check(b"021000021"));
        assert!(!v("aba").check(b"021000022"));
        assert!(!v("aba").check(b"991000021"), "bad Federal Reserve prefix");
        assert!(v("entropy >= 3.5").check(b"q8Zt4Rk1Lp9Xw2Vn7Bm3"));
        assert!(!v("entropy >= 3.5").check(b"aaaaaaaaaaaaaaaa"));
        assert!(v("ipv4").check(b"192.168.10.1"));
        assert!(!v("ipv4").check(b"192.168.010.1"));
        assert!(!v("ipv4").check(b"256.1.1.1"));
        assert!(v("ipv6").check(b"2001:db8::8a2e:370:7334"));
        assert!(!v("ipv6").check(b"::"));
        assert!(
            !v("ipv6").check(b"dead::beef"),
            "no digit: more likely code than an address"
        );
        assert!(v("digits 8..15").check(b"+1 (415) 555-2671"));
        assert!(!v("digits 8..15").check(b"+1 234"));
    }

    #[test]
    fn ipv4_accepts_exactly_what_std_parses() {
        let std = |v: &[u8]| parse_ip::<std::net::Ipv4Addr>(v).is_some();
        // Every octet spelling of up to four digits, in every position.
        for n in 0..10_000u32 {
            for width in 1..=4 {
                let octet = format!("{n:0width$}");
                if octet.len() != width {
                    continue;
                }
                for at in 0..4 {
                    let mut parts = ["1", "22", "0", "255"];
                    parts[at] = &octet;
                    let v = parts.join(".");
                    assert_eq!(ipv4(v.as_bytes()), std(v.as_bytes()), "{v}");
                }
            }
        }
        // Random strings over digits, dots and other bytes.
        let alphabet = b"0123456789..+- a\xff";
        let mut x: u64 = 1;
        for _ in 0..300_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 18) as usize;
            let v: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (3 * i + 5)) as usize) % alphabet.len()])
                .collect();
            assert_eq!(ipv4(&v), std(&v), "{:?}", String::from_utf8_lossy(&v));
        }
        for v in [
            "1.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "",
            ".1.2.3",
            "00.0.0.0",
            "1.2.3.04",
        ] {
            assert_eq!(ipv4(v.as_bytes()), std(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn validator_names_fail_with_the_known_list() {
        let e = "lunh".parse::<Validator>().unwrap_err();
        assert!(e.contains("known: luhn"), "{e}");
        assert!("entropy > 3".parse::<Validator>().is_err());
        assert!("entropy >= 9".parse::<Validator>().is_err());
        assert!("digits 9..8".parse::<Validator>().is_err());
        assert_eq!(
            "digits 8..15".parse::<Validator>().unwrap(),
            Validator::Digits(8, 15)
        );
        assert_eq!(
            "entropy>=3.5".parse::<Validator>().unwrap(),
            Validator::Entropy(3.5)
        );
    }
}
