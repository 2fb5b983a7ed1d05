//! Credentials for writes (and for reads when they are not public): a bearer
//! token or HTTP Basic user from the config file, compared in constant time so
//! response timing does not leak how much of a secret was right.

use crate::config::AuthConfig;
use base64::Engine;
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;

/// Byte comparison whose time depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Does the request carry valid credentials?
pub fn has_valid_credentials(cfg: &AuthConfig, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        let mut ok = false;
        for t in &cfg.tokens {
            ok |= ct_eq(t.as_bytes(), rest.as_bytes());
        }
        return ok;
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return false;
        };
        let Some(colon) = raw.iter().position(|b| *b == b':') else {
            return false;
        };
        let (user, pass) = (&raw[..colon], &raw[colon + 1..]);
        let mut ok = false;
        for u in &cfg.users {
            ok |= ct_eq(u.user.as_bytes(), user) & ct_eq(u.password.as_bytes(), pass);
        }
        return ok;
    }
    false
}

/// May this request write?
pub fn may_write(cfg: &AuthConfig, headers: &HeaderMap) -> bool {
    cfg.allow_unauthenticated_writes || has_valid_credentials(cfg, headers)
}

/// May this request read?
pub fn may_read(cfg: &AuthConfig, headers: &HeaderMap) -> bool {
    cfg.public_reads || may_write(cfg, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BasicUser;
    use hyper::header::HeaderValue;

    fn cfg() -> AuthConfig {
        AuthConfig {
            tokens: vec!["s3cret".into()],
            users: vec![BasicUser {
                user: "admin".into(),
                password: "pw:with:colons".into(),
            }],
            public_reads: true,
            allow_unauthenticated_writes: false,
        }
    }

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).expect("hv"));
        h
    }

    #[test]
    fn bearer_and_basic() {
        let c = cfg();
        assert!(may_write(&c, &with("Bearer s3cret")));
        assert!(!may_write(&c, &with("Bearer s3cre")));
        assert!(!may_write(&c, &with("Bearer ")));
        let good = base64::engine::general_purpose::STANDARD.encode("admin:pw:with:colons");
        assert!(may_write(&c, &with(&format!("Basic {good}"))));
        let bad = base64::engine::general_purpose::STANDARD.encode("admin:pw");
        assert!(!may_write(&c, &with(&format!("Basic {bad}"))));
        assert!(!may_write(&c, &with("Basic !!!")));
        assert!(!may_write(&c, &HeaderMap::new()));
        assert!(may_read(&c, &HeaderMap::new()));
    }
}
