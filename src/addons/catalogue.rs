//! The add-on catalogue compiled into the binary: for each supported version of each add-on,
//! its manifest files, where they are downloaded from, and their SHA-256 digests. A manifest
//! whose digest differs is refused, wherever it came from.
//!
//! The files are the release manifests as the Kubeflow manifests repository vendors them
//! (`upstream/` folders, rendered Istio), pinned by tag or commit. NVIDIA's device plugin is no
//! file: its one DaemonSet is a template compiled in (`nvidia-device-plugin.yaml`, see
//! `render::configured`), since `mlops` must write into it which node groups it runs on and
//! which of their taints it tolerates, and a plan with no network and an empty cache must still
//! know it. Its image is pinned by digest in that template.

use std::fmt;

/// The add-ons, in install order. The first is no choice of `[addons]`: the stack installs it
/// when a node group's AMI has an NVIDIA driver but no device plugin (`ami_type =
/// "AL2023_x86_64_NVIDIA"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addon {
    NvidiaDevicePlugin,
    CertManager,
    Istio,
    KnativeServing,
    Kserve,
}

impl Addon {
    pub const ALL: [Addon; 5] = [
        Addon::NvidiaDevicePlugin,
        Addon::CertManager,
        Addon::Istio,
        Addon::KnativeServing,
        Addon::Kserve,
    ];

    /// The folder name in bundles and caches, and the name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Addon::NvidiaDevicePlugin => "nvidia-device-plugin",
            Addon::CertManager => "cert-manager",
            Addon::Istio => "istio",
            Addon::KnativeServing => "knative-serving",
            Addon::Kserve => "kserve",
        }
    }

    /// The key in the spec's `[addons]` table, and the last segment of the add-on's address.
    pub fn spec_key(self) -> &'static str {
        match self {
            Addon::NvidiaDevicePlugin => "nvidia_device_plugin",
            Addon::CertManager => "cert_manager",
            Addon::Istio => "istio",
            Addon::KnativeServing => "knative_serving",
            Addon::Kserve => "kserve",
        }
    }

    /// Whether the project upgrades only one minor version at a time (a skip is refused
    /// unless `--allow-version-skip`): Knative "supports upgrading by a single minor version
    /// number" (its upgrade guide); Istio supports in-place upgrades from the previous minor
    /// only; cert-manager's upgrade guide says to go through each minor version in turn, as
    /// its CRD and webhook changes assume the previous one. KServe states no such rule.
    pub fn upgrades_one_minor_at_a_time(self) -> bool {
        !matches!(self, Addon::Kserve)
    }

    /// The versions of this add-on in the catalogue, oldest first.
    pub fn versions(self) -> impl Iterator<Item = &'static Release> {
        CATALOGUE.iter().filter(move |r| r.addon == self)
    }

    /// The release `version` names, with or without a leading `v`.
    pub fn release(self, version: &str) -> Option<&'static Release> {
        let bare = |v: &str| v.trim_start_matches('v').to_string();
        self.versions().find(|r| bare(r.version) == bare(version))
    }
}

/// The release of the add-on named `name` (as in [`Addon::name`]) and `version`.
pub fn release_named(name: &str, version: &str) -> Option<&'static Release> {
    Addon::ALL
        .into_iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.release(version))
}

/// A version's `major.minor` as numbers, for comparing (Kubernetes `1.31`, an add-on's
/// `v1.19.4`); `None` if it is not one.
pub fn kubernetes_minor(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.trim_start_matches('v').split_once('.')?;
    let minor = minor.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl Release {
    /// Whether this release runs on Kubernetes `version` (`1.31`), as far as the catalogue
    /// knows; a version it cannot read is left to the EKS version check.
    pub fn runs_on(&self, version: &str) -> bool {
        match (
            self.min_kubernetes.and_then(kubernetes_minor),
            kubernetes_minor(version),
        ) {
            (Some(min), Some(have)) => have >= min,
            _ => true,
        }
    }
}

impl fmt::Display for Addon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// The first set is Kubeflow manifests v1.10.1; the second its commit 009c880 of 2026-04-05.

/// One version of one add-on.
#[derive(Debug, PartialEq, Eq)]
pub struct Release {
    pub addon: Addon,
    /// As the project spells it (`v1.19.4`, `1.29.1`).
    pub version: &'static str,
    /// The oldest Kubernetes minor version this release runs on, where its project states one
    /// (`None`: no minimum recorded). Knative refuses to start below its own
    /// (`knative.dev/pkg/version`).
    pub min_kubernetes: Option<&'static str>,
    /// In apply order.
    pub files: &'static [ManifestFile],
    /// A manifest compiled into `mlops` instead of files to download, applied after them.
    pub template: Option<&'static str>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ManifestFile {
    pub name: &'static str,
    pub url: &'static str,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: &'static str,
}

macro_rules! file {
    ($name:literal, $rev:literal, $path:literal, $sha:literal) => {
        ManifestFile {
            name: $name,
            url: concat!(
                "https://raw.githubusercontent.com/kubeflow/manifests/",
                $rev,
                "/",
                $path
            ),
            sha256: $sha,
        }
    };
}

pub const CATALOGUE: &[Release] = &[
    // NVIDIA's k8s-device-plugin v0.17.1, for AL2023's NVIDIA AMIs (the Bottlerocket NVIDIA
    // variants carry a device plugin of their own). The template follows NVIDIA's static
    // manifest of that tag (`deployments/static/nvidia-device-plugin.yml`).
    Release {
        addon: Addon::NvidiaDevicePlugin,
        version: "v0.17.1",
        min_kubernetes: None,
        files: &[],
        template: Some(include_str!("nvidia-device-plugin.yaml")),
    },
    Release {
        addon: Addon::CertManager,
        version: "v1.16.1",
        min_kubernetes: None,
        template: None,
        files: &[file!(
            "cert-manager.yaml",
            "v1.10.1",
            "common/cert-manager/base/upstream/cert-manager.yaml",
            "ad09a35d3dd404f98f4e16555b01b89bdf7a499932b4567f3e2eddb4ef3cab15"
        )],
    },
    Release {
        addon: Addon::CertManager,
        version: "v1.19.4",
        min_kubernetes: None,
        template: None,
        files: &[file!(
            "cert-manager.yaml",
            "009c88084074904c7743384ff50d3bd70012ef55",
            "common/cert-manager/base/upstream/cert-manager.yaml",
            "abad40873bd9c63105bf1fc7c41354fe8ad716f01657762b5acb82977e707ef1"
        )],
    },
    Release {
        addon: Addon::Istio,
        version: "1.24.3",
        // Istio's supported releases: 1.24 on Kubernetes 1.28 to 1.31.
        min_kubernetes: Some("1.28"),
        template: None,
        files: &[
            file!(
                "crd.yaml",
                "v1.10.1",
                "common/istio-1-24/istio-crds/base/crd.yaml",
                "241e9245c81ab61b8d601013ebaf435b2826d8abc755a3782b21825aa8c9c473"
            ),
            file!(
                "install.yaml",
                "v1.10.1",
                "common/istio-1-24/istio-install/base/install.yaml",
                "e695cefe3e52f9ce4c0f53c65197779e0a6d519baeae7e403253be0d5b87d005"
            ),
        ],
    },
    Release {
        addon: Addon::Istio,
        version: "1.29.1",
        // Istio's supported releases (istio.io `data/compatibility/supportStatus.yml`): 1.29 on
        // Kubernetes 1.31 to 1.35.
        min_kubernetes: Some("1.31"),
        template: None,
        files: &[
            file!(
                "crd.yaml",
                "009c88084074904c7743384ff50d3bd70012ef55",
                "common/istio/istio-crds/base/crd.yaml",
                "84d5a174e99074f88aec0eb577f59690bc4ad28b7bddaee064642cca775e434a"
            ),
            file!(
                "install.yaml",
                "009c88084074904c7743384ff50d3bd70012ef55",
                "common/istio/istio-install/base/install.yaml",
                "5647c934957842082ecfa4e7536a1879d9f33f12430e0dc397a41b450b6c40ef"
            ),
        ],
    },
    Release {
        addon: Addon::KnativeServing,
        version: "1.16.2",
        // Knative's minimum Kubernetes version policy: 1.16 needs 1.29.
        min_kubernetes: Some("1.29"),
        template: None,
        files: &[
            file!(
                "serving-core.yaml",
                "v1.10.1",
                "common/knative/knative-serving/base/upstream/serving-core.yaml",
                "be99b84bcfb749d558facefb8e36c206e72a932bbd314f2ddffc1a36029392f9"
            ),
            file!(
                "net-istio.yaml",
                "v1.10.1",
                "common/knative/knative-serving/base/upstream/net-istio.yaml",
                "400a61dd16c1d6a16d9e3c710ce25c173f57b8ea3dc4958941e90c02a62fc28d"
            ),
        ],
    },
    Release {
        addon: Addon::KnativeServing,
        version: "1.21.1",
        // ... and 1.21 needs 1.33.
        min_kubernetes: Some("1.33"),
        template: None,
        files: &[
            file!(
                "serving-core.yaml",
                "009c88084074904c7743384ff50d3bd70012ef55",
                "common/knative/knative-serving/base/upstream/serving-core.yaml",
                "b953f17d95e8a693f1dacfbb6f9395aabb63a0185606aa499bfb275f3d589f30"
            ),
            file!(
                "net-istio.yaml",
                "009c88084074904c7743384ff50d3bd70012ef55",
                "common/knative/knative-serving/base/upstream/net-istio.yaml",
                "501c374433194d86d76152706a82b7ee53911fafd281f9d36e9e2d8180e4a562"
            ),
        ],
    },
    Release {
        addon: Addon::Kserve,
        version: "v0.15.0",
        min_kubernetes: None,
        template: None,
        files: &[
            file!(
                "kserve.yaml",
                "v1.10.1",
                "apps/kserve/kserve/kserve.yaml",
                "6cf0d97d3cd310b637a9026103cea2dd0989bd361b3048d1491e409d18252fd8"
            ),
            file!(
                "kserve-cluster-resources.yaml",
                "v1.10.1",
                "apps/kserve/kserve/kserve-cluster-resources.yaml",
                "ef0f7b970460a4a6d524ba5088633043550621dc96e9ee552e57411638b4ad23"
            ),
        ],
    },
    Release {
        addon: Addon::Kserve,
        version: "v0.16.0",
        min_kubernetes: None,
        template: None,
        files: &[
            file!(
                "kserve.yaml",
                "009c88084074904c7743384ff50d3bd70012ef55",
                "applications/kserve/kserve/kserve.yaml",
                "1cedecd9022a6793a394f3c8b8cdb8dab6d8b8b0cd33b2046a22f4f7356e6eb3"
            ),
            file!(
                "kserve-cluster-resources.yaml",
                "009c88084074904c7743384ff50d3bd70012ef55",
                "applications/kserve/kserve/kserve-cluster-resources.yaml",
                "67bcdfe0bce80e813cb4b35fadba54dc8f26172651ee263318c93930fdf1934d"
            ),
        ],
    },
];
