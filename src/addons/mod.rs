//! Cluster add-ons: the catalogue of supported versions (compiled in, with digests) and where
//! their manifests come from: a local bundle in the catalogue's layout (`--manifests-dir`, for
//! air-gapped CI), or a cache that is filled by downloading on first use. Every file is checked
//! against its digest, whatever its origin.

pub mod catalogue;
pub mod ingress;
pub mod render;
mod source;

pub use catalogue::{release_named, Addon, ManifestFile, Release, CATALOGUE};
pub use source::{AddonError, ManifestSource};
