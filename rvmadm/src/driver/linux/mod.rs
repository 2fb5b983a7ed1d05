//! The Linux driver: an OCI runtime (runc by default) on the ZFS clone, inside a
//! network namespace that vmadm owns.
