//! `[vpc] endpoints`: the AWS services the VPC reaches through endpoints of its own. Without a
//! NAT gateway the nodes reach no AWS API otherwise, and a node group fails after about 20
//! minutes of nodes that cannot pull images (ECR, and S3 where the layers are) or join (STS,
//! EC2): so `nat = "none"` gets all of them by default and refuses a list that lacks one. With a
//! NAT gateway, endpoints are optional (they keep that traffic off the NAT).

use std::collections::BTreeSet;

use super::{raw, Problems};
use crate::spec::NatMode;

/// The endpoints mlops makes: S3 as a gateway endpoint, the others as interface endpoints.
pub const ENDPOINT_SERVICES: [&str; 6] = ["s3", "ecr.api", "ecr.dkr", "sts", "ec2", "logs"];

pub(super) fn endpoints(p: &mut Problems, vpc: &raw::RawVpc, nat: NatMode) -> Vec<String> {
    let Some(list) = &vpc.endpoints else {
        let all: BTreeSet<String> = ENDPOINT_SERVICES.iter().map(|s| s.to_string()).collect();
        return match nat {
            NatMode::None => all.into_iter().collect(),
            _ => Vec::new(),
        };
    };
    let mut chosen = BTreeSet::new();
    for service in list.get_ref() {
        if p.choice(service, "VPC endpoint service", &ENDPOINT_SERVICES)
            .is_some()
            && !chosen.insert(service.get_ref().clone())
        {
            p.at(
                service.span(),
                format!("VPC endpoint `{}` is listed twice", service.get_ref()),
            );
        }
    }
    if nat == NatMode::None {
        let missing: Vec<String> = ENDPOINT_SERVICES
            .iter()
            .filter(|s| !chosen.contains(**s))
            .map(|s| format!("`{s}`"))
            .collect();
        if !missing.is_empty() {
            p.hint(
                list.span(),
                format!(
                    "with `nat = \"none\"` the nodes reach AWS only through endpoints, and {} are missing",
                    missing.join(", ")
                ),
                "leave `endpoints` out to get them all, or choose a NAT gateway (`nat = \"single\"`)",
            );
        }
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use crate::spec::tests::{line_of, parse_text, problems, EXAMPLE};

    #[test]
    fn no_nat_means_every_endpoint_and_a_nat_none() {
        let none = EXAMPLE.replacen("nat = \"single\"", "nat = \"none\"", 1);
        let spec = parse_text(&none).unwrap();
        assert_eq!(
            spec.vpc.endpoints,
            ["ec2", "ecr.api", "ecr.dkr", "logs", "s3", "sts"]
        );
        assert!(parse_text(EXAMPLE).unwrap().vpc.endpoints.is_empty());
        let optional = EXAMPLE.replacen(
            "nat = \"single\"",
            "nat = \"single\"\nendpoints = [\"s3\"]",
            1,
        );
        assert_eq!(parse_text(&optional).unwrap().vpc.endpoints, ["s3"]);
    }

    #[test]
    fn no_nat_with_missing_endpoints_is_refused_at_the_list() {
        let text = EXAMPLE.replacen(
            "nat = \"single\"",
            "nat = \"none\"\nendpoints = [\"s3\", \"sts\", \"sqs\"]",
            1,
        );
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0]
            .2
            .contains("`ecr.api`, `ecr.dkr`, `ec2`, `logs` are missing"));
        assert!(found[1]
            .2
            .contains("`sqs` is not a valid VPC endpoint service"));
        assert!(found.iter().all(|f| f.0 == line_of(&text, "endpoints = ")));
    }
}
