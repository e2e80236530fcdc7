//! Where a GPU node's device plugin comes from, read from its node group's AMI type. Without a
//! device plugin a node never advertises `nvidia.com/gpu`, and a GPU InferenceService stays
//! Pending. Bottlerocket's NVIDIA variants run one of their own; AL2023's NVIDIA AMIs have the
//! driver only, so the stack installs NVIDIA's (`addon.nvidia_device_plugin`). The planner
//! shows the answer as the node group's `device_plugin` attribute; the node group provider
//! reads it back from the live AMI type the same way, so it never drifts on its own.

/// The attribute of an `eks_node_group` that says where its device plugin comes from.
pub const ATTR: &str = "device_plugin";

/// The address of the add-on that installs NVIDIA's device plugin.
pub const ADDON_ADDRESS: &str = "addon.nvidia_device_plugin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePlugin {
    /// The AMI runs one (Bottlerocket's NVIDIA variants).
    InAmi,
    /// The stack installs NVIDIA's as an add-on (AL2023's NVIDIA AMIs).
    Addon,
}

impl DevicePlugin {
    /// The device plugin an AMI type needs or has; `None` for AMIs without NVIDIA's driver.
    pub fn of(ami_type: &str) -> Option<Self> {
        if !ami_type.ends_with("_NVIDIA") {
            None
        } else if ami_type.starts_with("BOTTLEROCKET_") {
            Some(DevicePlugin::InAmi)
        } else {
            Some(DevicePlugin::Addon)
        }
    }

    /// The value of the node group's `device_plugin` attribute: `ami`, or the add-on's address.
    pub fn as_attr(self) -> &'static str {
        match self {
            DevicePlugin::InAmi => "ami",
            DevicePlugin::Addon => ADDON_ADDRESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addons::Addon;
    use crate::model::{Address, ResourceKind};

    #[test]
    fn nvidia_amis_have_a_device_plugin_from_the_ami_or_the_addon() {
        for (ami, plugin) in [
            ("BOTTLEROCKET_x86_64_NVIDIA", Some(DevicePlugin::InAmi)),
            ("BOTTLEROCKET_ARM_64_NVIDIA", Some(DevicePlugin::InAmi)),
            ("AL2023_x86_64_NVIDIA", Some(DevicePlugin::Addon)),
            ("AL2023_ARM_64_NVIDIA", Some(DevicePlugin::Addon)),
            ("AL2023_x86_64_STANDARD", None),
            ("BOTTLEROCKET_x86_64", None),
        ] {
            assert_eq!(DevicePlugin::of(ami), plugin, "{ami}");
        }
        let address = Address::of(
            ResourceKind::Addon.name(),
            &[Addon::NvidiaDevicePlugin.spec_key()],
        );
        assert_eq!(address.as_str(), ADDON_ADDRESS);
    }
}
