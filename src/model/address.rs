//! Resource addresses: stable, human-readable names such as `subnet.public.us-west-2a`.
//! The first dot-separated segment is the resource kind; the rest identifies the instance.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(String);

impl Address {
    pub fn new(address: impl Into<String>) -> Self {
        Address(address.into())
    }

    /// `kind.part1.part2...`
    pub fn of(kind: &str, parts: &[&str]) -> Self {
        let mut address = kind.to_string();
        for part in parts {
            address.push('.');
            address.push_str(part);
        }
        Address(address)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kind segment, e.g. `subnet` for `subnet.public.us-west-2a`.
    pub fn kind_name(&self) -> &str {
        self.0.split('.').next().unwrap_or("")
    }

    /// Everything after the kind, e.g. `public.us-west-2a` for `subnet.public.us-west-2a`.
    pub fn instance(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, rest)| rest)
    }

    /// Where the state keeps an object replaced by a successor made before its delete, until
    /// that delete is done: `eks_node_group.gpu.deposed`. A run that stops in between leaves it
    /// in the state, with no counterpart in the spec: the next plan deletes it.
    pub fn deposed(&self) -> Address {
        Address(format!("{}.deposed", self.0))
    }

    /// The last segment, e.g. `us-west-2a` for `subnet.public.us-west-2a`.
    pub fn last(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or("")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Address {
    fn from(s: &str) -> Self {
        Address::new(s)
    }
}
