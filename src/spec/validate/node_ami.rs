//! The AMI of each node group: the one written, or the one its instance types need. A GPU
//! instance on the standard AMI has no NVIDIA driver and never advertises `nvidia.com/gpu`; a
//! Graviton instance cannot boot an x86 AMI. So GPU groups get a Bottlerocket NVIDIA variant
//! (which carries the driver and NVIDIA's device plugin) and the usual `nvidia.com/gpu`
//! `NO_SCHEDULE` taint, Graviton groups an ARM64 AMI, and a group that mixes kinds is refused.
//! AL2023's NVIDIA AMIs may be written: they carry the driver only, and the stack installs
//! NVIDIA's device plugin beside them as an add-on, which needs `[addons]` enabled.

use std::collections::BTreeMap;

use super::{raw, Problems};
use crate::model::device_plugin::DevicePlugin;
use crate::spec::{NodeGroupSpec, Taint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    X86,
    Arm,
}

/// What an instance type needs of its AMI: its architecture and whether it has NVIDIA GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Needs {
    arch: Arch,
    nvidia: bool,
}

impl Needs {
    fn describe(self) -> &'static str {
        match (self.arch, self.nvidia) {
            (Arch::X86, false) => "x86",
            (Arch::Arm, false) => "Graviton (ARM64)",
            (Arch::X86, true) => "NVIDIA GPU",
            (Arch::Arm, true) => "NVIDIA GPU on ARM64",
        }
    }

    /// The AMI chosen when none is written.
    fn default_ami(self) -> &'static str {
        match (self.arch, self.nvidia) {
            (Arch::X86, false) => "AL2023_x86_64_STANDARD",
            (Arch::Arm, false) => "AL2023_ARM_64_STANDARD",
            (Arch::X86, true) => "BOTTLEROCKET_x86_64_NVIDIA",
            (Arch::Arm, true) => "BOTTLEROCKET_ARM_64_NVIDIA",
        }
    }
}

/// EC2 instance families with NVIDIA GPUs, and which of them are ARM64 (Graviton or Grace).
const NVIDIA_FAMILIES: [&str; 17] = [
    "g4dn",
    "g5",
    "g5g",
    "g6",
    "g6e",
    "g6f",
    "gr6",
    "gr6f",
    "p3",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "p6-b200",
    "p6e-gb200",
];
const ARM_NVIDIA_FAMILIES: [&str; 2] = ["g5g", "p6e-gb200"];

/// The AMI types a node group may name: Amazon Linux 2023 and Bottlerocket, with what each needs.
const AMI_TYPES: [(&str, Needs); 8] = [
    ("AL2023_x86_64_STANDARD", X86),
    ("AL2023_ARM_64_STANDARD", ARM),
    ("AL2023_x86_64_NVIDIA", X86_NVIDIA),
    ("AL2023_ARM_64_NVIDIA", ARM_NVIDIA),
    ("BOTTLEROCKET_x86_64", X86),
    ("BOTTLEROCKET_ARM_64", ARM),
    ("BOTTLEROCKET_x86_64_NVIDIA", X86_NVIDIA),
    ("BOTTLEROCKET_ARM_64_NVIDIA", ARM_NVIDIA),
];
const X86: Needs = Needs {
    arch: Arch::X86,
    nvidia: false,
};
const ARM: Needs = Needs {
    arch: Arch::Arm,
    nvidia: false,
};
const X86_NVIDIA: Needs = Needs {
    arch: Arch::X86,
    nvidia: true,
};
const ARM_NVIDIA: Needs = Needs {
    arch: Arch::Arm,
    nvidia: true,
};

/// The taint GPU nodes get, so that only pods that tolerate it (GPU workloads) land there.
pub const GPU_TAINT_KEY: &str = "nvidia.com/gpu";

/// What an instance type (`g5.xlarge`) needs: NVIDIA families by name; Graviton families have a
/// `g` among the letters after the generation digit (`m7g`, `c7gn`, `t4g`, `im4gn`), and `a1`.
fn needs(instance_type: &str) -> Needs {
    let family = instance_type.split('.').next().unwrap_or_default();
    if NVIDIA_FAMILIES.contains(&family) {
        return if ARM_NVIDIA_FAMILIES.contains(&family) {
            ARM_NVIDIA
        } else {
            X86_NVIDIA
        };
    }
    let after_digit = family
        .find(|c: char| c.is_ascii_digit())
        .map(|i| family[i..].trim_start_matches(|c: char| c.is_ascii_digit()));
    let graviton = family == "a1" || after_digit.is_some_and(|rest| rest.contains('g'));
    if graviton {
        ARM
    } else {
        X86
    }
}

/// Sets each group's AMI type, checked against its instance types, and the GPU taint of GPU
/// groups that do not write one.
pub(super) fn choose(
    p: &mut Problems,
    eks: &raw::RawEks,
    groups: &mut BTreeMap<String, NodeGroupSpec>,
) {
    let Some(raw_groups) = &eks.node_groups else {
        return;
    };
    for (key, raw_group) in raw_groups.get_ref() {
        let g = raw_group.get_ref();
        let Some(group) = groups.get_mut(key) else {
            continue;
        };
        let types = g.instance_types.get_ref();
        let Some(first) = types.first() else {
            continue;
        };
        let want = needs(first.get_ref());
        if let Some(other) = types.iter().find(|t| needs(t.get_ref()) != want) {
            p.hint(
                g.instance_types.span(),
                format!(
                    "node group `{key}` mixes {} (`{}`) and {} (`{}`) instance types",
                    want.describe(),
                    first.get_ref(),
                    needs(other.get_ref()).describe(),
                    other.get_ref()
                ),
                "one AMI serves a node group: put each kind of instance in a group of its own",
            );
            continue;
        }
        group.ami_type = match &g.ami_type {
            None => want.default_ami().to_string(),
            Some(written) => {
                check_written(p, key, written, want, first.get_ref());
                written.get_ref().clone()
            }
        };
        let has_gpu_taint = group.taints.iter().any(|t| t.key == GPU_TAINT_KEY);
        if want.nvidia && !has_gpu_taint {
            group.taints.push(Taint {
                key: GPU_TAINT_KEY.into(),
                value: Some("true".into()),
                effect: "NO_SCHEDULE".into(),
            });
        }
    }
}

/// A written AMI type: one of `AMI_TYPES`, for the instances' architecture and GPUs.
fn check_written(
    p: &mut Problems,
    key: &str,
    written: &raw::S<String>,
    want: Needs,
    instance: &str,
) {
    let text = written.get_ref();
    let Some((_, has)) = AMI_TYPES.iter().find(|(name, _)| *name == text) else {
        let names: Vec<String> = AMI_TYPES.iter().map(|(n, _)| format!("`{n}`")).collect();
        p.hint(
            written.span(),
            format!("`{text}` is not an AMI type mlops supports"),
            format!("use one of {}, or leave `ami_type` out", names.join(", ")),
        );
        return;
    };
    if *has != want {
        p.hint(
            written.span(),
            format!(
                "node group `{key}`: `{text}` is for {} instances, but `{instance}` is {}",
                has.describe(),
                want.describe()
            ),
            format!("use `{}`, or leave `ami_type` out", want.default_ami()),
        );
    }
}

/// Refuses an AMI whose device plugin the stack would install (AL2023's NVIDIA AMIs) when the
/// stack stays out of the cluster: its GPUs would never be advertised.
pub(super) fn check_device_plugin(
    p: &mut Problems,
    eks: &raw::RawEks,
    groups: &BTreeMap<String, NodeGroupSpec>,
    addons_enabled: bool,
) {
    if addons_enabled {
        return;
    }
    let Some(raw_groups) = &eks.node_groups else {
        return;
    };
    for (key, raw_group) in raw_groups.get_ref() {
        let Some(written) = &raw_group.get_ref().ami_type else {
            continue;
        };
        let needs_addon = groups
            .get(key)
            .and_then(NodeGroupSpec::device_plugin)
            .is_some_and(|plugin| plugin == DevicePlugin::Addon);
        if needs_addon {
            p.hint(
                written.span(),
                format!(
                    "node group `{key}`: `{}` has no NVIDIA device plugin, which mlops installs only with `[addons] enabled = true`",
                    written.get_ref()
                ),
                "enable `[addons]`, or use a Bottlerocket NVIDIA AMI (its device plugin is in the AMI) by leaving `ami_type` out",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::{line_of, parse_text, problems};

    const TEAM_A: &str = include_str!("../../../stacks/team-a.toml");

    #[test]
    fn instance_families_need_their_ami() {
        for (t, ami) in [
            ("t3.medium", "AL2023_x86_64_STANDARD"),
            ("m5.large", "AL2023_x86_64_STANDARD"),
            ("g4ad.xlarge", "AL2023_x86_64_STANDARD"),
            ("m7g.large", "AL2023_ARM_64_STANDARD"),
            ("c7gn.xlarge", "AL2023_ARM_64_STANDARD"),
            ("t4g.small", "AL2023_ARM_64_STANDARD"),
            ("im4gn.large", "AL2023_ARM_64_STANDARD"),
            ("a1.medium", "AL2023_ARM_64_STANDARD"),
            ("g5.xlarge", "BOTTLEROCKET_x86_64_NVIDIA"),
            ("g4dn.xlarge", "BOTTLEROCKET_x86_64_NVIDIA"),
            ("p4d.24xlarge", "BOTTLEROCKET_x86_64_NVIDIA"),
            ("g5g.xlarge", "BOTTLEROCKET_ARM_64_NVIDIA"),
        ] {
            assert_eq!(needs(t).default_ami(), ami, "{t}");
        }
    }

    /// `stacks/team-a.toml` with `from` replaced by `to`: its spec, or its problems as
    /// `(line, message)`.
    fn team_a_with(from: &str, to: &str) -> Result<crate::spec::Spec, Vec<(usize, String)>> {
        assert!(TEAM_A.contains(from), "team-a has no `{from}`");
        let text = TEAM_A.replacen(from, to, 1);
        parse_text(&text).map_err(|_| {
            problems(&text)
                .into_iter()
                .map(|(line, _, message)| (line, message))
                .collect()
        })
    }

    #[test]
    fn team_as_gpu_group_gets_the_nvidia_variant_and_the_gpu_taint() {
        let spec = team_a_with("", "").unwrap();
        let gpu = &spec.eks.node_groups["gpu"];
        assert_eq!(gpu.ami_type, "BOTTLEROCKET_x86_64_NVIDIA");
        assert_eq!(
            gpu.taints,
            [Taint {
                key: GPU_TAINT_KEY.into(),
                value: Some("true".into()),
                effect: "NO_SCHEDULE".into()
            }]
        );
        let default = &spec.eks.node_groups["default"];
        assert_eq!(default.ami_type, "AL2023_x86_64_STANDARD");
        assert!(default.taints.is_empty());
        // A taint of the same key written by the team is kept as written, not doubled.
        let written = team_a_with(
            "desired = 0\n",
            "desired = 0\ntaints = [{ key = \"nvidia.com/gpu\", effect = \"NO_EXECUTE\" }]\n",
        )
        .unwrap();
        let taints = &written.eks.node_groups["gpu"].taints;
        assert_eq!(taints.len(), 1, "{taints:?}");
        assert_eq!(taints[0].effect, "NO_EXECUTE");
    }

    #[test]
    fn a_mixed_group_and_a_wrong_ami_are_refused_at_their_line() {
        let errors = team_a_with(
            "instance_types = [\"g5.xlarge\"]",
            "instance_types = [\"g5.xlarge\", \"m7g.large\"]",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].1.contains(
            "node group `gpu` mixes NVIDIA GPU (`g5.xlarge`) and Graviton (ARM64) (`m7g.large`)"
        ));
        assert_eq!(
            errors[0].0,
            line_of(TEAM_A, "instance_types = [\"g5.xlarge\"]")
        );

        let errors = team_a_with(
            "capacity = \"spot\"",
            "capacity = \"spot\"\nami_type = \"AL2023_x86_64_STANDARD\"",
        )
        .unwrap_err();
        assert!(errors[0]
            .1
            .contains("is for x86 instances, but `g5.xlarge` is NVIDIA GPU"));
        let errors = team_a_with(
            "capacity = \"spot\"",
            "capacity = \"spot\"\nami_type = \"AL2_x86_64\"",
        )
        .unwrap_err();
        assert!(errors[0].1.contains("not an AMI type mlops supports"));
        let spec = team_a_with(
            "capacity = \"spot\"",
            "capacity = \"spot\"\nami_type = \"BOTTLEROCKET_x86_64_NVIDIA\"",
        )
        .unwrap();
        assert_eq!(
            spec.eks.node_groups["gpu"].ami_type,
            "BOTTLEROCKET_x86_64_NVIDIA"
        );
    }

    /// AL2023's NVIDIA AMI has the driver but no device plugin: accepted, with the plugin from
    /// the stack's add-on, which needs `[addons]`; without them it is refused at its line.
    #[test]
    fn an_al2023_nvidia_group_needs_the_addons() {
        let al2023 = "capacity = \"spot\"\nami_type = \"AL2023_x86_64_NVIDIA\"";
        let spec = team_a_with("capacity = \"spot\"", al2023).unwrap();
        let gpu = &spec.eks.node_groups["gpu"];
        assert_eq!(gpu.ami_type, "AL2023_x86_64_NVIDIA");
        assert_eq!(gpu.device_plugin(), Some(DevicePlugin::Addon));
        assert_eq!(gpu.taints[0].key, GPU_TAINT_KEY);
        assert_eq!(
            spec.eks.node_groups["default"].device_plugin(),
            None,
            "a group without GPUs"
        );

        let text = format!(
            "{}\n[addons]\nenabled = false\n",
            TEAM_A.replacen("capacity = \"spot\"", al2023, 1)
        );
        let errors = problems(&text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].2.contains("`AL2023_x86_64_NVIDIA` has no NVIDIA device plugin, which mlops installs only with `[addons] enabled = true`"),
            "{errors:?}"
        );
        assert_eq!(
            errors[0].0,
            line_of(&text, "ami_type = \"AL2023_x86_64_NVIDIA\"")
        );
    }
}
