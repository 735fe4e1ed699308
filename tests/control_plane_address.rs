//! The kubeadm control plane's Elastic IP: the API endpoint, the kubeconfig and the
//! certificate's names survive a stop and start; `plan` shows it; `down` releases it.

mod common;

use common::{Cluster, OwnEmulator, sdk, tagged, user_data};

/// The control plane's instance id and public address, as EC2 reports them now.
async fn master(c: &provision::aws::Clients, cluster: &str) -> (String, Option<String>) {
    let obs = tagged(c, cluster).await;
    let m = obs
        .live_instances("master")
        .next()
        .expect("a control plane");
    (m.id.clone(), m.public_ip.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_endpoint_survives_a_stop_and_start_and_down_releases_the_address() {
    let cl = Cluster::new("eip", 1, "");
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    let planned: Vec<(String, String)> = plan
        .actions_of("plan")
        .into_iter()
        .filter(|(id, _)| id.starts_with("master-eip"))
        .collect();
    assert_eq!(
        planned,
        [
            ("master-eip", "create"),
            ("master-eip-association", "create")
        ]
        .map(|(i, a)| (i.to_string(), a.to_string())),
        "plan shows the address and its association"
    );

    let up = cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    let eip = obs
        .addresses
        .iter()
        .find(|a| a.logical.as_deref() == Some("master-eip"))
        .expect("an Elastic IP tagged for the control plane");
    let (id, public) = master(&c, &cl.name).await;
    assert_eq!(eip.instance_id.as_deref(), Some(id.as_str()));
    assert_eq!(public.as_deref(), Some(eip.public_ip.as_str()));
    let endpoint = format!("https://{}:6443", eip.public_ip);
    assert_eq!(up.summary()["api_endpoint"], endpoint.as_str());
    assert!(
        std::fs::read_to_string(cl.kubeconfig())
            .unwrap()
            .contains(&format!("server: {endpoint}")),
        "the kubeconfig names the Elastic IP"
    );
    let data = user_data(&c, &id).await;
    assert!(
        data.contains(&format!(r#"\"{}\""#, eip.public_ip)) && !data.contains("public-ipv4"),
        "the certificate names the Elastic IP, not the address at boot"
    );

    // Stopped (and started again by up): the same address, nothing else to do.
    c.ec2
        .stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    let changed: Vec<(String, String)> = plan
        .actions_of("plan")
        .into_iter()
        .filter(|(_, a)| a != "keep")
        .collect();
    assert_eq!(changed, [("master".to_string(), "update".to_string())]);
    let again = cl.up();
    assert_eq!(
        again.calls("EC2", "AssociateAddress"),
        0,
        "still associated"
    );
    assert_eq!(again.summary()["api_endpoint"], endpoint.as_str());
    assert_eq!(
        master(&c, &cl.name).await,
        (id, Some(eip.public_ip.clone()))
    );

    let down = cl.down();
    assert_eq!(down.calls("EC2", "ReleaseAddress"), 1);
    let left = c
        .ec2
        .describe_addresses()
        .allocation_ids(&eip.allocation_id)
        .send()
        .await;
    assert!(left.is_err(), "released: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_address_is_associated_once_the_instance_runs() {
    // Instances pending for 2 s; AWS (and this emulator) refuse to associate until they run.
    let emu = OwnEmulator::start(&[("PROVISION_EMULATOR_EC2_BOOT", "2")]);
    let cl = Cluster::new("eip-pending", 1, "");
    let up = emu.run(&cl, &["up", "-f", cl.spec_arg(), "--wait", "running"]);
    assert!(up.ok(), "{}", up.stderr);
    assert!(
        up.calls("EC2", "AssociateAddress") >= 2,
        "refused while pending, then accepted: {}",
        up.summary()["api_calls"]
    );
    let c = emu.sdk().await;
    let (_, public) = master(&c, &cl.name).await;
    assert_eq!(up.summary()["master_public_ip"].as_str(), public.as_deref());
    let down = emu.run(&cl, &["down", "-f", cl.spec_arg()]);
    assert!(down.ok(), "{}", down.stderr);
}

/// A run that stopped between the launch and the association (killed, or the address released
/// by hand and made again): the next `up` associates the address and the endpoint it reports and
/// writes is the address, not the public IP the instance had before it.
#[tokio::test(flavor = "multi_thread")]
async fn an_address_associated_by_a_later_run_is_the_endpoint_that_run_writes() {
    let cl = Cluster::new("eip-resume", 1, "");
    cl.up();
    let c = sdk().await;
    let obs = tagged(&c, &cl.name).await;
    let eip = obs
        .addresses
        .iter()
        .find(|a| a.logical.as_deref() == Some("master-eip"))
        .expect("an Elastic IP tagged for the control plane")
        .clone();
    c.ec2
        .disassociate_address()
        .association_id(eip.association_id.clone().unwrap())
        .send()
        .await
        .unwrap();
    let (_, before) = master(&c, &cl.name).await;
    assert_ne!(before.as_deref(), Some(eip.public_ip.as_str()));

    let again = cl.up();
    assert_eq!(again.calls("EC2", "AssociateAddress"), 1);
    let endpoint = format!("https://{}:6443", eip.public_ip);
    assert_eq!(again.summary()["api_endpoint"], endpoint.as_str());
    assert_eq!(again.summary()["master_public_ip"], eip.public_ip.as_str());
    assert!(
        std::fs::read_to_string(cl.kubeconfig())
            .unwrap()
            .contains(&format!("server: {endpoint}")),
        "the kubeconfig names the Elastic IP"
    );
    cl.down();
}
