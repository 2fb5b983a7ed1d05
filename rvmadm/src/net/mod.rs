//! Network plans shared by the drivers.
