//! The network both flavours share: the availability zones, the VPC, a public subnet per zone
//! behind the internet gateway and, with `private_subnets`, a private subnet per zone behind
//! one NAT gateway.

use super::{AZS, Builder, IGW, NAT_EIP, NAT_GATEWAY, PRIVATE_ROUTE_TABLE, ROUTE_TABLE, VPC};
use super::{private_subnet_id, subnet_id};
use crate::core::kinds::Desired;
use crate::core::kinds::availability_zones::AvailabilityZones;
use crate::core::kinds::elastic_ip::ElasticIp;
use crate::core::kinds::internet_gateway::InternetGateway;
use crate::core::kinds::nat_gateway::NatGateway;
use crate::core::kinds::route_table::RouteTable;
use crate::core::kinds::subnet::Subnet;
use crate::core::kinds::vpc::Vpc;
use crate::core::spec::ClusterSpec;

/// The subnets' node ids, for what goes into them.
pub(crate) struct Net {
    pub public: Vec<String>,
    pub private: Vec<String>,
}

pub(crate) fn nodes(spec: &ClusterSpec, b: &mut Builder) -> Net {
    let n = &spec.network;
    b.add(
        AZS,
        Desired::AvailabilityZones(AvailabilityZones {
            count: n.subnet_cidrs.len(),
            instance_type: spec.instance_type().to_string(),
        }),
        &[],
    );
    b.add(VPC, Desired::Vpc(Vpc { cidr: n.vpc_cidr }), &[]);
    // The first public subnet keeps a kubeadm control plane's address for it.
    let reserved = super::kubeadm::master_address(spec);
    let subnet = |index: usize, cidr, public: bool| {
        Desired::Subnet(Subnet {
            index,
            cidr,
            public,
            vpc: VPC.into(),
            zones: AZS.into(),
            reserve: reserved.filter(|_| public && index == 0),
        })
    };
    let public: Vec<String> = (0..n.subnet_cidrs.len()).map(subnet_id).collect();
    for (i, cidr) in n.subnet_cidrs.iter().enumerate() {
        b.add(&public[i], subnet(i, *cidr, true), &[VPC, AZS]);
    }
    let private: Vec<String> = (0..n.private_subnet_cidrs.len())
        .map(private_subnet_id)
        .collect();
    for (i, cidr) in n.private_subnet_cidrs.iter().enumerate() {
        b.add(&private[i], subnet(i, *cidr, false), &[VPC, AZS]);
    }
    b.add(
        IGW,
        Desired::InternetGateway(InternetGateway { vpc: VPC.into() }),
        &[VPC],
    );
    let mut deps: Vec<&str> = vec![VPC, IGW];
    deps.extend(public.iter().map(String::as_str));
    b.add(
        ROUTE_TABLE,
        Desired::RouteTable(RouteTable {
            vpc: VPC.into(),
            gateway: IGW.into(),
            subnets: public.clone(),
        }),
        &deps,
    );
    if !private.is_empty() {
        b.add(NAT_EIP, Desired::ElasticIp(ElasticIp), &[]);
        // The NAT gateway needs the IGW attached and its subnet routed to it.
        b.add(
            NAT_GATEWAY,
            Desired::NatGateway(NatGateway {
                subnet: public[0].clone(),
                address: NAT_EIP.into(),
            }),
            &[&public[0], NAT_EIP, ROUTE_TABLE],
        );
        let mut deps: Vec<&str> = vec![VPC, NAT_GATEWAY];
        deps.extend(private.iter().map(String::as_str));
        b.add(
            PRIVATE_ROUTE_TABLE,
            Desired::RouteTable(RouteTable {
                vpc: VPC.into(),
                gateway: NAT_GATEWAY.into(),
                subnets: private.clone(),
            }),
            &deps,
        );
    }
    Net { public, private }
}
