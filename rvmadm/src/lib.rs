//! rvmadm: a SmartOS-compatible `vmadm`/`imgadm` for FreeBSD jails and Linux
//! OCI containers on ZFS.
//!
//! Layers, top to bottom: the binaries (`src/bin`) parse argv and render;
//! [`ops`] holds one module per verb; [`spec`], [`store`] and [`image`] hold the
//! payload, VM records and images; [`driver`] runs jails on a host; [`zfs`]
//! and [`exec`] talk to the system. Only [`exec`] spawns processes.

pub mod config;
pub mod driver;
pub mod exec;
pub mod image;
pub mod ops;
pub mod spec;
pub mod store;
pub mod zfs;
