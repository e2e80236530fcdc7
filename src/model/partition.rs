//! The AWS partition a region belongs to: `aws`, `aws-cn` (China) or `aws-us-gov` (GovCloud).
//! ARNs name the partition (`arn:aws-cn:iam::aws:policy/...`) and service hosts and principals
//! end in its DNS suffix (`ec2.amazonaws.com.cn`), so nothing may write `arn:aws:` or
//! `amazonaws.com` by hand: a stack in China or GovCloud would be refused by IAM.

/// A partition, derived from a region code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The partition's name in ARNs.
    pub name: &'static str,
    /// The domain of its service endpoints and service principals.
    pub dns_suffix: &'static str,
}

impl Partition {
    /// The partition of `region`: `cn-*` is China, `us-gov-*` GovCloud, any other the
    /// commercial one.
    pub fn of(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Partition {
                name: "aws-cn",
                dns_suffix: "amazonaws.com.cn",
            }
        } else if region.starts_with("us-gov-") {
            Partition {
                name: "aws-us-gov",
                dns_suffix: "amazonaws.com",
            }
        } else {
            Partition {
                name: "aws",
                dns_suffix: "amazonaws.com",
            }
        }
    }

    /// An AWS-managed IAM policy: `arn:<partition>:iam::aws:policy/<name>`.
    pub fn managed_policy(self, name: &str) -> String {
        format!("arn:{}:iam::aws:policy/{name}", self.name)
    }

    /// The principal of an AWS service in IAM trust policies: `ec2.amazonaws.com.cn` in China.
    pub fn service_principal(self, service: &str) -> String {
        format!("{service}.{}", self.dns_suffix)
    }

    /// An S3 bucket's ARN; with `objects`, the ARN of every object in it.
    pub fn bucket_arn(self, bucket: &str, objects: bool) -> String {
        let suffix = if objects { "/*" } else { "" };
        format!("arn:{}:s3:::{bucket}{suffix}", self.name)
    }

    /// The host of a regional service endpoint: `sts.cn-north-1.amazonaws.com.cn`.
    pub fn regional_host(self, service: &str, region: &str) -> String {
        format!("{service}.{region}.{}", self.dns_suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_partition() {
        assert_eq!(Partition::of("us-west-2").name, "aws");
        assert_eq!(Partition::of("eu-central-1").name, "aws");
        assert_eq!(Partition::of("cn-north-1").name, "aws-cn");
        assert_eq!(
            Partition::of("cn-northwest-1").dns_suffix,
            "amazonaws.com.cn"
        );
        assert_eq!(Partition::of("us-gov-west-1").name, "aws-us-gov");
        assert_eq!(Partition::of("us-gov-east-1").dns_suffix, "amazonaws.com");
    }

    #[test]
    fn arns_and_principals_name_the_partition() {
        let china = Partition::of("cn-north-1");
        assert_eq!(
            china.managed_policy("AmazonEKSClusterPolicy"),
            "arn:aws-cn:iam::aws:policy/AmazonEKSClusterPolicy"
        );
        assert_eq!(china.service_principal("ec2"), "ec2.amazonaws.com.cn");
        assert_eq!(china.bucket_arn("m", true), "arn:aws-cn:s3:::m/*");
        let gov = Partition::of("us-gov-west-1");
        assert_eq!(gov.bucket_arn("m", false), "arn:aws-us-gov:s3:::m");
        assert_eq!(
            gov.regional_host("sts", "us-gov-west-1"),
            "sts.us-gov-west-1.amazonaws.com"
        );
    }
}
