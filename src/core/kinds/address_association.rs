//! An Elastic IP associated with an instance: the kubeadm control plane's fixed public address,
//! so that the API endpoint, the kubeconfig and the certificate's names outlive a stop and
//! start. The address is an `elastic-ip` node of its own (allocated before the instance, whose
//! certificate names it); this node ties the two together once the instance exists.

use std::fmt;

use super::elastic_ip::find;
use super::{Change, Context, NoState, Plan};
use crate::core::latency::{Cost, Profile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressAssociation {
    /// The Elastic IP's node.
    pub address: String,
    /// The instance node (of one instance) it belongs to.
    pub instance: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The address is associated with another instance: move it back to ours.
    Move { from: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Move { from } => write!(f, "move the address from {from}"),
        }
    }
}

impl Plan for AddressAssociation {
    const NAME: &'static str = "address-association";
    // AWS reports associations with the addresses (the `elastic-ip` kind's observation); the
    // address's release ends its association, so `down` has nothing of its own to delete.
    type Observed = NoState;
    type Drift = Drift;

    fn diff(&self, _id: &str, cx: &Context<'_>) -> Change<Drift> {
        let ours = cx.obs.live_instances(&self.instance).next().map(|i| &i.id);
        let Some(a) = find(cx.obs, &self.address) else {
            return match ours {
                // An instance launched before its address (an older release, or the address
                // released by hand): its certificate does not name the new address.
                Some(i) => Change::create().warn(format!(
                    "{i} was launched before this address: its API server certificate does not \
                     name it (kubectl checks the name `kubernetes`, which it has)"
                )),
                None => Change::create(),
            };
        };
        match (&a.instance_id, &a.association_id) {
            (Some(on), Some(association)) if Some(on) == ours => {
                Change::keep(Some(association.clone()))
            }
            (Some(on), Some(association)) => {
                Change::update(association, vec![Drift::Move { from: on.clone() }])
            }
            // Associated with something that is not an instance (a network interface).
            (None, Some(association)) => Change::update(
                association,
                vec![Drift::Move {
                    from: "a network interface".into(),
                }],
            ),
            _ => Change::create(),
        }
    }

    // AssociateAddress, which AWS accepts once the instance runs (it is launched just before).
    fn cost(&self, p: &Profile) -> Cost {
        Cost::same(p.ec2_boot + p.call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kinds::Action;
    use crate::core::kinds::elastic_ip::ObsAddress;
    use crate::core::kinds::instances::ObsInstance;

    fn check(address: Option<(Option<&str>, Option<&str>)>, master: Option<&str>) -> Action {
        change(address, master).action
    }

    fn change(
        address: Option<(Option<&str>, Option<&str>)>,
        master: Option<&str>,
    ) -> Change<Drift> {
        let spec = crate::core::spec::parse(
            "t.toml",
            "name = \"a\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = 1\n",
        )
        .unwrap()
        .0;
        let graph = crate::core::graph::build(&spec);
        let mut obs = crate::core::kinds::Observed::default();
        if let Some((instance, association)) = address {
            obs.addresses.push(ObsAddress {
                allocation_id: "eipalloc-1".into(),
                logical: Some("master-eip".into()),
                public_ip: "198.51.100.7".into(),
                association_id: association.map(str::to_string),
                instance_id: instance.map(str::to_string),
            });
        }
        if let Some(id) = master {
            obs.instances.push(ObsInstance {
                id: id.into(),
                logical: Some("master".into()),
                state: "stopped".into(),
                subnet_id: None,
                private_ip: None,
                public_ip: None,
                version: None,
                ..Default::default()
            });
        }
        let cx = Context {
            spec: &spec,
            graph: &graph,
            obs: &obs,
            now: 0,
        };
        AddressAssociation {
            address: "master-eip".into(),
            instance: "master".into(),
        }
        .diff("master-eip-association", &cx)
    }

    #[test]
    fn an_address_on_our_instance_is_kept_even_while_it_is_stopped() {
        assert_eq!(
            check(Some((Some("i-1"), Some("eipassoc-1"))), Some("i-1")),
            Action::Keep
        );
    }

    #[test]
    fn a_free_or_missing_address_is_associated_and_a_moved_one_moved_back() {
        assert_eq!(check(None, None), Action::Create);
        assert_eq!(check(Some((None, None)), Some("i-1")), Action::Create);
        assert_eq!(
            check(Some((Some("i-9"), Some("eipassoc-9"))), Some("i-1")),
            Action::Update
        );
    }

    #[test]
    fn an_address_made_after_its_instance_is_a_create_that_says_the_certificate_lacks_it() {
        let c = change(None, Some("i-1"));
        assert_eq!(c.action, Action::Create);
        assert!(
            c.warnings[0].contains("i-1") && c.warnings[0].contains("certificate"),
            "{:?}",
            c.warnings
        );
        assert!(change(None, None).warnings.is_empty());
    }

    #[test]
    fn an_address_on_a_network_interface_is_moved_not_created() {
        let c = change(Some((None, Some("eipassoc-7"))), Some("i-1"));
        assert_eq!(c.action, Action::Update);
        assert_eq!(
            c.drifts,
            [Drift::Move {
                from: "a network interface".into()
            }]
        );
    }
}
