//! MAC addresses: parsing to the canonical form and SmartOS-style generation.
//!
//! SmartOS generates a locally administered unicast address whose first
//! octet is one random hex digit 1–f followed by `2` (so `12`, `a2`, `f2` …),
//! the remaining five octets random.

use rand::Rng;

/// Canonical form: six lowercase, zero-padded octets joined by `:`.
/// Accepts `:` or `-` separators and single-digit octets (`2:8:20:1:2:3`).
pub fn normalize(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = Vec::with_capacity(6);
    for p in parts {
        if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        out.push(format!("{:0>2}", p.to_ascii_lowercase()));
    }
    Some(out.join(":"))
}

/// A new random MAC following the SmartOS rule.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let first = rng.gen_range(1..=15u8);
    let mut s = format!("{first:x}2");
    for _ in 0..5 {
        s.push_str(&format!(":{:02x}", rng.gen::<u8>()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize("2:8:20:A:b:3").as_deref(),
            Some("02:08:20:0a:0b:03")
        );
        assert_eq!(
            normalize("02-08-20-0a-0b-03").as_deref(),
            Some("02:08:20:0a:0b:03")
        );
        for bad in [
            "",
            "02:08:20:0a:0b",
            "02:08:20:0a:0b:03:04",
            "0g:08:20:0a:0b:03",
            "002:08:20:0a:0b:03",
        ] {
            assert!(normalize(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn generated_macs_follow_the_smartos_rule() {
        for _ in 0..2000 {
            let m = generate();
            assert_eq!(normalize(&m).as_deref(), Some(m.as_str()));
            let first = u8::from_str_radix(&m[0..2], 16).unwrap();
            assert_eq!(first & 0x0f, 0x02, "{m}: second digit must be 2");
            assert!(first >= 0x12, "{m}: first digit must be 1-f");
            // locally administered (bit 1) and unicast (bit 0 clear)
            assert_eq!(first & 0b11, 0b10);
        }
    }
}
