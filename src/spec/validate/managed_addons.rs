//! `[eks] managed_addons` and `addon_versions`: which EKS managed add-ons the stack keeps (all
//! four by default: the pod network, cluster DNS, the service proxy, and the EBS CSI driver
//! without which no PersistentVolumeClaim binds) and which of them are pinned to a version.

use std::collections::BTreeMap;

use super::{raw, Problems};

/// The EBS CSI driver: the one managed add-on with a role of its own (IRSA).
pub const EBS_CSI_DRIVER: &str = "aws-ebs-csi-driver";

/// The managed add-ons mlops knows, in EKS's names.
const KNOWN: [&str; 4] = ["vpc-cni", "coredns", "kube-proxy", EBS_CSI_DRIVER];

pub(super) fn managed_addons(
    p: &mut Problems,
    eks: &raw::RawEks,
) -> BTreeMap<String, Option<String>> {
    let mut addons: BTreeMap<String, Option<String>> = match &eks.managed_addons {
        None => KNOWN.iter().map(|a| (a.to_string(), None)).collect(),
        Some(list) => {
            let mut chosen = BTreeMap::new();
            for name in list.get_ref() {
                if p.choice(name, "EKS managed add-on", &KNOWN).is_some()
                    && chosen.insert(name.get_ref().clone(), None).is_some()
                {
                    p.at(
                        name.span(),
                        format!("managed add-on `{}` is listed twice", name.get_ref()),
                    );
                }
            }
            chosen
        }
    };
    for (name, version) in eks.addon_versions.iter().flatten() {
        let text = version.get_ref();
        match addons.get_mut(name) {
            None => p.hint(
                version.span(),
                format!("`addon_versions` pins `{name}`, which is not a managed add-on of the stack"),
                format!(
                    "pin one of {}",
                    addons
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(_) if !is_addon_version(text) => p.hint(
                version.span(),
                format!("`{text}` is not an EKS add-on version"),
                "write it as EKS names it, e.g. `v1.19.2-eksbuild.1`; `aws eks describe-addon-versions` lists them",
            ),
            Some(pinned) => *pinned = Some(text.clone()),
        }
    }
    addons
}

/// `v<major>.<minor>.<patch>-eksbuild.<n>`, the shape of EKS's add-on versions.
fn is_addon_version(text: &str) -> bool {
    let Some((semver, build)) = text
        .strip_prefix('v')
        .and_then(|rest| rest.split_once("-eksbuild."))
    else {
        return false;
    };
    let numbers = |s: &str, count: usize| {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == count
            && parts
                .iter()
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    numbers(semver, 3) && numbers(build, 1)
}

#[cfg(test)]
mod tests {
    use crate::spec::tests::{line_of, parse_text, problems, EXAMPLE};

    #[test]
    fn all_four_by_default_and_a_pin_is_kept() {
        let spec = parse_text(EXAMPLE).unwrap();
        assert_eq!(
            spec.eks.managed_addons.keys().collect::<Vec<_>>(),
            ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]
        );
        assert!(spec.eks.managed_addons.values().all(Option::is_none));
        let pinned = EXAMPLE.replacen(
            "[eks.node_groups.default]",
            "[eks.addon_versions]\nvpc-cni = \"v1.19.2-eksbuild.1\"\n\n[eks.node_groups.default]",
            1,
        );
        let spec = parse_text(&pinned).unwrap();
        assert_eq!(
            spec.eks.managed_addons["vpc-cni"].as_deref(),
            Some("v1.19.2-eksbuild.1")
        );
    }

    #[test]
    fn unknown_add_ons_and_bad_pins_are_refused_at_their_line() {
        let text = EXAMPLE.replacen(
            "[eks.node_groups.default]",
            "managed_addons = [\"vpc-cni\", \"kube-dns\"]\n\n[eks.addon_versions]\nvpc-cni = \"1.19\"\ncoredns = \"v1.11.4-eksbuild.2\"\n\n[eks.node_groups.default]",
            1,
        );
        let found = problems(&text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0]
            .2
            .contains("`kube-dns` is not a valid EKS managed add-on"));
        assert_eq!(found[0].0, line_of(&text, "managed_addons"));
        assert!(found[1].2.contains("`1.19` is not an EKS add-on version"));
        assert_eq!(found[1].0, line_of(&text, "vpc-cni = "));
        assert!(found[2]
            .2
            .contains("pins `coredns`, which is not a managed add-on"));
        assert_eq!(found[2].0, line_of(&text, "coredns = "));
    }
}
