//! The FreeBSD driver: nested jails (outer: vnet + limits; inner: tenant) driven
//! by pure argv plans that a tiny runner executes. See docs/freebsd.md.
