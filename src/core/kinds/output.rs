//! Typed outputs: what a node learns while `up` runs it (ids, addresses, the CA), handed to the
//! nodes that depend on it and to nobody else.

use std::collections::HashMap;
use std::sync::Arc;

use super::bootstrap_secret::Bootstrap;
use super::eks_cluster::EksInfo;
use super::image::ImageInfo;
use super::instances::ObsInstance;

/// What one node produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Nothing its dependents need.
    Nothing,
    /// The AWS id (or name) of what the node stands for.
    Id(String),
    /// A security group's id (rules name groups by logical id; see [`Inputs::groups`]).
    Group(String),
    /// An Elastic IP: its allocation id and address.
    Address {
        allocation: String,
        ip: String,
    },
    Role {
        name: String,
        arn: String,
    },
    /// The availability zones, in the order the subnets use them.
    Zones(Vec<String>),
    Image(ImageInfo),
    Bootstrap(Bootstrap),
    /// The node's instances, live ones only.
    Instances(Vec<ObsInstance>),
    /// The bootstrap token new workers join with.
    Token(String),
    Eks(EksInfo),
}

/// An output a node needed but its dependencies did not give: a bug in the graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {node} has no {wanted} output for its dependent (internal error: please file a bug)")]
pub struct Missing {
    pub node: String,
    pub wanted: &'static str,
}

/// The outputs of one node's dependencies, by their ids.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    by_id: HashMap<String, Arc<Output>>,
}

macro_rules! accessor {
    ($name:ident, $wanted:literal, $pat:pat => $out:expr, $ty:ty) => {
        #[doc = concat!("The ", $wanted, " output of dependency `id`.")]
        pub fn $name(&self, id: &str) -> Result<$ty, Missing> {
            match self.by_id.get(id).map(|o| o.as_ref()) {
                Some($pat) => Ok($out),
                _ => Err(Missing {
                    node: id.to_string(),
                    wanted: $wanted,
                }),
            }
        }
    };
}

impl Inputs {
    pub fn new(by_id: HashMap<String, Arc<Output>>) -> Inputs {
        Inputs { by_id }
    }

    /// The output of dependency `id`, whatever it is.
    pub fn get(&self, id: &str) -> Option<&Output> {
        self.by_id.get(id).map(|o| o.as_ref())
    }

    /// Every dependency with its output.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Output)> {
        self.by_id.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    accessor!(id, "id", Output::Id(id) => id.as_str(), &str);
    accessor!(group, "security group", Output::Group(id) => id.as_str(), &str);
    accessor!(address, "address", Output::Address { allocation, ip } => (allocation.as_str(), ip.as_str()), (&str, &str));
    accessor!(role, "role", Output::Role { name, arn } => (name.as_str(), arn.as_str()), (&str, &str));
    accessor!(zones, "zones", Output::Zones(z) => z.as_slice(), &[String]);
    accessor!(image, "image", Output::Image(i) => i, &ImageInfo);
    accessor!(bootstrap, "bootstrap", Output::Bootstrap(b) => b, &Bootstrap);
    accessor!(instances, "instances", Output::Instances(i) => i.as_slice(), &[ObsInstance]);
    accessor!(token, "token", Output::Token(t) => t.as_str(), &str);
    accessor!(eks, "EKS cluster", Output::Eks(e) => e, &EksInfo);

    /// The AWS ids of security groups among the dependencies (and the EKS cluster's own group,
    /// under [`crate::core::graph::EKS_CLUSTER_SG`]), by logical id: what rules name.
    pub fn groups(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for (id, o) in self.iter() {
            match o {
                Output::Group(aws) => {
                    out.insert(id.to_string(), aws.clone());
                }
                Output::Eks(e) => {
                    if let Some(g) = &e.cluster_sg {
                        out.insert(crate::core::graph::EKS_CLUSTER_SG.to_string(), g.clone());
                    }
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_of_the_wrong_shape_is_an_internal_error_naming_the_node() {
        let inputs = Inputs::new(HashMap::from([
            ("vpc".to_string(), Arc::new(Output::Id("vpc-1".into()))),
            (
                "sg-nodes".to_string(),
                Arc::new(Output::Group("sg-1".into())),
            ),
        ]));
        assert_eq!(inputs.id("vpc").unwrap(), "vpc-1");
        let e = inputs.role("vpc").unwrap_err();
        assert_eq!(e.node, "vpc");
        assert!(e.to_string().contains("internal error"), "{e}");
        assert!(inputs.id("subnet-0").is_err());
        assert_eq!(
            inputs.groups().get("sg-nodes").map(String::as_str),
            Some("sg-1")
        );
        assert!(!inputs.groups().contains_key("vpc"));
    }
}
