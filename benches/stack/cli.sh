#!/usr/bin/env bash
# The benchmark's comparison, not part of mlops: the example stack (add-ons off) made the way
# the tutorials make it, one `aws` CLI call after the other, `aws ... wait` for what takes time
# (the CLI's own waiters: NAT gateways every 15 s, EKS clusters and node groups every 30 s), and
# a retry loop around CreateCluster while IAM propagates the new role. Run by benches/stack/
# against the same AWS-behaviour layer as mlops, with AWS_ENDPOINT_URL set and `aws` on PATH.
#   cli.sh STACK
set -euo pipefail
s="$1"
text() { aws "$@" --output text; }

vpc=$(text ec2 create-vpc --cidr-block 10.0.0.0/16 --query Vpc.VpcId)
aws ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-support '{"Value":true}'
aws ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-hostnames '{"Value":true}'
subnet() { text ec2 create-subnet --vpc-id "$vpc" --cidr-block "$1" --availability-zone "$2" --query Subnet.SubnetId; }
public_a=$(subnet 10.0.101.0/24 us-west-2a)
public_b=$(subnet 10.0.102.0/24 us-west-2b)
private_a=$(subnet 10.0.1.0/24 us-west-2a)
private_b=$(subnet 10.0.2.0/24 us-west-2b)
for id in "$public_a" "$public_b"; do
    aws ec2 modify-subnet-attribute --subnet-id "$id" --map-public-ip-on-launch
done
igw=$(text ec2 create-internet-gateway --query InternetGateway.InternetGatewayId)
aws ec2 attach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$vpc"
eip=$(text ec2 allocate-address --domain vpc --query AllocationId)
nat=$(text ec2 create-nat-gateway --subnet-id "$public_a" --allocation-id "$eip" --query NatGateway.NatGatewayId)
aws ec2 wait nat-gateway-available --nat-gateway-ids "$nat"

public_rt=$(text ec2 create-route-table --vpc-id "$vpc" --query RouteTable.RouteTableId)
aws ec2 create-route --route-table-id "$public_rt" --destination-cidr-block 0.0.0.0/0 --gateway-id "$igw" >/dev/null
for id in "$public_a" "$public_b"; do
    aws ec2 associate-route-table --route-table-id "$public_rt" --subnet-id "$id" >/dev/null
done
for id in "$private_a" "$private_b"; do
    rt=$(text ec2 create-route-table --vpc-id "$vpc" --query RouteTable.RouteTableId)
    aws ec2 create-route --route-table-id "$rt" --destination-cidr-block 0.0.0.0/0 --nat-gateway-id "$nat" >/dev/null
    aws ec2 associate-route-table --route-table-id "$rt" --subnet-id "$id" >/dev/null
done

trust() { printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"%s.amazonaws.com"},"Action":"sts:AssumeRole"}]}' "$1"; }
cluster_role=$(text iam create-role --role-name "$s-eks-cluster" --assume-role-policy-document "$(trust eks)" --query Role.Arn)
aws iam attach-role-policy --role-name "$s-eks-cluster" --policy-arn arn:aws:iam::aws:policy/AmazonEKSClusterPolicy
key=$(text kms create-key --description "$s secrets" --query KeyMetadata.Arn)
aws iam put-role-policy --role-name "$s-eks-cluster" --policy-name secrets-encryption \
    --policy-document "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"kms:Encrypt\",\"kms:Decrypt\",\"kms:DescribeKey\",\"kms:CreateGrant\"],\"Resource\":\"$key\"}]}"
node_role=$(text iam create-role --role-name "$s-eks-node" --assume-role-policy-document "$(trust ec2)" --query Role.Arn)
for policy in AmazonEKSWorkerNodePolicy AmazonEKS_CNI_Policy AmazonEC2ContainerRegistryReadOnly; do
    aws iam attach-role-policy --role-name "$s-eks-node" --policy-arn "arn:aws:iam::aws:policy/$policy"
done

# EKS refuses a role IAM has not propagated yet: try again until it takes it.
until aws eks create-cluster --name "$s-cluster" --kubernetes-version 1.33 --role-arn "$cluster_role" \
    --resources-vpc-config "subnetIds=$private_a,$private_b,endpointPublicAccess=true,endpointPrivateAccess=true" \
    --encryption-config "resources=secrets,provider={keyArn=$key}" \
    --logging '{"clusterLogging":[{"types":["api","audit","authenticator"],"enabled":true}]}' >/dev/null 2>&1; do
    sleep 1
done
aws eks wait cluster-active --name "$s-cluster"
until aws eks create-nodegroup --cluster-name "$s-cluster" --nodegroup-name default \
    --node-role "$node_role" --subnets "$private_a" "$private_b" --instance-types t3.medium \
    --disk-size 50 --scaling-config minSize=1,maxSize=3,desiredSize=2 --labels workload=general >/dev/null 2>&1; do
    sleep 1
done
aws eks wait nodegroup-active --cluster-name "$s-cluster" --nodegroup-name default

issuer=$(text eks describe-cluster --name "$s-cluster" --query cluster.identity.oidc.issuer)
oidc=$(text iam create-open-id-connect-provider --url "$issuer" --client-id-list sts.amazonaws.com \
    --thumbprint-list 9e99a48a9960b14926bb7f3b02e22da2b0ab7280 --query OpenIDConnectProviderArn)
irsa_trust="{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Federated\":\"$oidc\"},\"Action\":\"sts:AssumeRoleWithWebIdentity\"}]}"
aws iam create-role --role-name "$s-irsa-kserve-s3" --assume-role-policy-document "$irsa_trust" >/dev/null

bucket="$s-models"
aws s3api create-bucket --bucket "$bucket" --create-bucket-configuration LocationConstraint=us-west-2 >/dev/null
aws s3api put-bucket-versioning --bucket "$bucket" --versioning-configuration Status=Enabled
aws s3api put-bucket-encryption --bucket "$bucket" \
    --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
aws s3api put-public-access-block --bucket "$bucket" \
    --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
aws iam put-role-policy --role-name "$s-irsa-kserve-s3" --policy-name scoped \
    --policy-document "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"s3:GetObject\",\"s3:ListBucket\"],\"Resource\":[\"arn:aws:s3:::$bucket\",\"arn:aws:s3:::$bucket/*\"]}]}"

aws ecr create-repository --repository-name "$s/wine-model" \
    --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE >/dev/null
aws ecr put-lifecycle-policy --repository-name "$s/wine-model" \
    --lifecycle-policy-text '{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}}]}' >/dev/null
