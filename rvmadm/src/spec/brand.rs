//! Brands: which ones an OS-container VM may carry, and what they mean.
//!
//! `jail` is the native container; `joyent` and `joyent-minimal` are accepted
//! as synonyms so unmodified SmartOS tooling works; `lx` and `lx-jail` run
//! Linux binaries (Linux ABI on FreeBSD, native on Linux). The brand a user
//! gave is kept and shown back as given. `bhyve`/`kvm` are reserved for
//! hardware VMs and refused for now.

/// The OS-container brands vmadm accepts.
pub const OS_BRANDS: &[&str] = &["jail", "joyent", "joyent-minimal", "lx", "lx-jail"];

/// Hardware-VM brands: recognised (so the error is precise) but not supported.
pub const HVM_BRANDS: &[&str] = &["bhyve", "kvm"];

/// True for a brand vmadm can create (one of [`OS_BRANDS`]).
pub(crate) fn is_supported(brand: &str) -> bool {
    OS_BRANDS.contains(&brand)
}

/// True for the brands that run Linux binaries (`lx`, `lx-jail`).
pub(crate) fn is_lx(brand: &str) -> bool {
    matches!(brand, "lx" | "lx-jail")
}

/// The `type` column of `vmadm list`: brand family truncated to 4 chars.
pub fn list_type(brand: &str) -> &'static str {
    match brand {
        "lx" | "lx-jail" => "LX",
        "kvm" => "KVM",
        "bhyve" => "BHYV",
        _ => "OS",
    }
}

/// Prefix of NIC interface names inside the VM.
pub fn interface_prefix(brand: &str) -> &'static str {
    if is_lx(brand) {
        "eth"
    } else {
        "net"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_facts() {
        assert!(is_supported("joyent-minimal"));
        assert!(!is_supported("kvm"));
        assert_eq!(list_type("lx-jail"), "LX");
        assert_eq!(list_type("jail"), "OS");
        assert_eq!(interface_prefix("lx"), "eth");
    }
}
