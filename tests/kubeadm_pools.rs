//! Worker pools of a kubeadm cluster, against the emulator and a stand-in API server: pools
//! launched with their labels, taints, subnets and instance types; scale-in draining the newest
//! nodes through the Eviction API (a PodDisruptionBudget refusing, DaemonSet and mirror pods
//! skipped, a deadline naming the pods that stayed); refused before any change when the API
//! server does not answer; rolling replacement within the surge budget when the instance type
//! changes.

mod common;

use common::{Cluster, KubeStandIn, node_name, sdk, tagged, user_data};
use provision::aws::Clients;
use provision::core::kinds::instances::ObsInstance;

const POOLS: &str = r#"
[[kubeadm.pools]]
name = "general"
count = 3

[[kubeadm.pools]]
name = "gpu"
instance_type = "t3.large"
count = 1
spot = true
subnets = [1]
labels = { team = "ml", "example.com/gpu" = "true" }
taints = [{ key = "gpu", value = "true", effect = "NO_SCHEDULE" }]
"#;

async fn live(c: &Clients, cluster: &str) -> Vec<ObsInstance> {
    tagged(c, cluster)
        .await
        .instances
        .into_iter()
        .filter(|i| i.is_live())
        .collect()
}

fn of<'a>(all: &'a [ObsInstance], logical: &str) -> Vec<&'a ObsInstance> {
    all.iter()
        .filter(|i| i.logical.as_deref() == Some(logical))
        .collect()
}

async fn stand_in(c: &Clients, cl: &Cluster, refuse: u32) -> KubeStandIn {
    common::kube_stand_in_for(c, cl, refuse).await
}

/// `up` through the stand-in, polls sped up.
fn up_via(cl: &Cluster, api: &str, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "up",
        "-f",
        cl.spec_arg(),
        "--wait",
        "running",
        "--api-server",
        api,
    ];
    args.extend_from_slice(extra);
    let mut cmd = cl.command(&args);
    cmd.env("PROVISION_TIME_SCALE", "0.05");
    common::Run::from_output(cmd.output().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn pools_launch_with_their_type_subnets_labels_taints_and_tags() {
    let cl = Cluster::with_pools("pools", POOLS);
    let up = cl.run(&["up", "-f", cl.spec_arg(), "--wait", "running"]);
    assert!(up.ok(), "{}", up.stderr);
    let c = sdk().await;
    let all = live(&c, &cl.name).await;
    assert_eq!(of(&all, "workers-general-0").len(), 2);
    assert_eq!(of(&all, "workers-general-1").len(), 1);
    let gpu = of(&all, "workers-gpu-1");
    assert_eq!(gpu.len(), 1, "the gpu pool is in subnet 1 only");
    assert!(of(&all, "workers-gpu-0").is_empty());
    assert_eq!(gpu[0].instance_type.as_deref(), Some("t3.large"));
    assert_eq!(
        of(&all, "workers-general-0")[0].instance_type.as_deref(),
        Some("t3.medium")
    );
    for i in all
        .iter()
        .filter(|i| i.logical.as_deref() != Some("master"))
    {
        assert!(
            i.launch_hash.as_ref().is_some_and(|h| h.len() == 12),
            "{i:?}"
        );
    }
    assert_ne!(
        gpu[0].launch_hash,
        of(&all, "workers-general-0")[0].launch_hash
    );
    let doc = user_data(&c, &gpu[0].id).await;
    assert!(
        doc.contains("name: node-labels")
            && doc.contains("value: \"example.com/gpu=true,team=ml\""),
        "{doc}"
    );
    assert!(doc.contains("- key: \"gpu\"") && doc.contains("effect: NoSchedule"));
    let general = user_data(&c, &of(&all, "workers-general-1")[0].id).await;
    assert!(!general.contains("node-labels") && !general.contains("taints:"));

    // Converged: nothing to do, and nothing to drain (the API server is not asked).
    let plan = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(plan.ok(), "{}", plan.stderr);
    assert!(
        plan.plan_ids("update").is_empty(),
        "{:?}",
        plan.actions_of("plan")
    );
    assert!(plan.plan_ids("create").is_empty());
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_in_drains_the_newest_nodes_through_the_eviction_api() {
    // The legacy form: one pool named `workers`, instances `workers-0` and `workers-1`.
    let cl = Cluster::new("scalein", 3, "");
    let up = cl.run(&["up", "-f", cl.spec_arg(), "--wait", "running"]);
    assert!(up.ok(), "{}", up.stderr);
    let c = sdk().await;
    let before = live(&c, &cl.name).await;
    let zone0 = of(&before, "workers-0");
    assert_eq!(zone0.len(), 2);
    assert_eq!(of(&before, "workers-1").len(), 1);
    cl.edit("workers = 3", "workers = 1");

    // The API server does not answer: refused before anything changes, saying why.
    for cmd in ["plan", "up"] {
        let run = cl.run(&[
            cmd,
            "-f",
            cl.spec_arg(),
            "--api-server",
            "https://127.0.0.1:9",
        ]);
        assert_eq!(run.code, Some(1), "{cmd}: {}", run.stderr);
        let said = format!("{}{}", run.stderr, run.summary());
        assert!(
            said.contains("worker pool workers has nodes to drain")
                && said.contains("does not answer")
                && said.contains("--api-server"),
            "{cmd}: {said}"
        );
        assert_eq!(run.mutating_calls(), Vec::<String>::new(), "{cmd}");
    }
    assert_eq!(live(&c, &cl.name).await.len(), before.len());

    // The plan names the nodes that go: the newest of zone 0, the one of zone 1.
    let newest = zone0
        .iter()
        .max_by_key(|i| (i.launched_at, i.id.clone()))
        .unwrap();
    let kept = zone0.iter().find(|i| i.id != newest.id).unwrap();
    let zone1 = of(&before, "workers-1")[0];
    let k = stand_in(&c, &cl, u32::MAX).await;
    let plan = cl.run(&["plan", "-f", cl.spec_arg(), "--api-server", &k.url]);
    assert!(plan.ok(), "{}", plan.stderr);
    let rows = plan.summary()["plan"].to_string();
    for i in [&newest.id, &zone1.id] {
        assert!(rows.contains(&format!("drain and remove {i}")), "{rows}");
    }
    assert!(!rows.contains(&format!("remove {}", kept.id)));

    // A PodDisruptionBudget that never allows: the drain gives up at its deadline naming the
    // pod, and nothing is terminated.
    let stuck = up_via(&cl, &k.url, &["--drain-timeout", "3"]);
    assert_eq!(stuck.code, Some(1), "{}", stuck.stderr);
    assert!(
        stuck.stderr.contains("default/web-ip-") && stuck.stderr.contains("disruption budget"),
        "{}",
        stuck.stderr
    );
    assert_eq!(live(&c, &cl.name).await.len(), before.len());
    {
        let st = k.state.lock().unwrap();
        assert!(st.deleted.is_empty());
        assert!(
            st.cordoned.is_empty(),
            "a node whose drain gave up is uncordoned: {:?}",
            st.requests
        );
    }

    // One that refuses once: the next run drains both, skipping DaemonSet and mirror pods.
    let k = stand_in(&c, &cl, 1).await;
    let up = up_via(&cl, &k.url, &[]);
    assert!(up.ok(), "{}", up.stderr);
    let after = live(&c, &cl.name).await;
    let ids: Vec<&str> = after.iter().map(|i| i.id.as_str()).collect();
    assert!(ids.contains(&kept.id.as_str()));
    assert!(!ids.contains(&newest.id.as_str()) && !ids.contains(&zone1.id.as_str()));
    let st = k.state.lock().unwrap();
    assert_eq!(st.refused, 1, "the budget refused once and was asked again");
    for i in [newest, &zone1] {
        let node = node_name(i.private_ip.as_deref().unwrap());
        assert!(st.cordoned.contains(&node) && st.deleted.contains(&node));
        assert!(st.evicted.contains(&format!("default/web-{node}")));
        let at = |prefix: &str| {
            st.requests
                .iter()
                .position(|r| r.starts_with(prefix))
                .unwrap_or_else(|| panic!("{prefix}: {:?}", st.requests))
        };
        let cordon = at(&format!("PATCH /api/v1/nodes/{node}"));
        let evict = at(&format!(
            "POST /api/v1/namespaces/default/pods/web-{node}/eviction"
        ));
        let delete = at(&format!("DELETE /api/v1/nodes/{node}"));
        assert!(cordon < evict && evict < delete, "{:?}", st.requests);
    }
    assert!(
        !st.requests
            .iter()
            .any(|r| r.contains("calico-node-") || r.contains("/static-")),
        "DaemonSet and mirror pods are not evicted: {:?}",
        st.requests
    );
    // The Eviction is policy/v1's, with its field names.
    let body = st
        .requests
        .iter()
        .find(|r| r.contains("/eviction"))
        .unwrap();
    assert!(body.contains("\"apiVersion\":\"policy/v1\"") && !body.contains("delete_options"));
    drop(st);
    let again = cl.run(&["plan", "-f", cl.spec_arg()]);
    assert!(
        again.plan_ids("update").is_empty(),
        "{:?}",
        again.actions_of("plan")
    );
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_instance_type_rolls_the_pool_one_node_at_a_time() {
    let cl = Cluster::with_pools(
        "roll",
        "\n[[kubeadm.pools]]\nname = \"general\"\ncount = 2\nsubnets = [0]\n",
    );
    let up = cl.run(&["up", "-f", cl.spec_arg(), "--wait", "running"]);
    assert!(up.ok(), "{}", up.stderr);
    let c = sdk().await;
    let old: Vec<String> = of(&live(&c, &cl.name).await, "workers-general-0")
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(old.len(), 2);
    cl.edit("count = 2\n", "count = 2\ninstance_type = \"t3.large\"\n");

    let k = stand_in(&c, &cl, 0).await;
    // A new node joins a while after its instance runs: nothing is drained before it is Ready.
    {
        let mut st = k.state.lock().unwrap();
        st.ready_after = std::time::Duration::from_secs(2);
        st.window_cap = Some(std::time::Duration::from_millis(300));
    }
    let plan = cl.run(&["plan", "-f", cl.spec_arg(), "--api-server", &k.url]);
    assert!(plan.ok(), "{}", plan.stderr);
    let rows = plan.summary()["plan"].to_string();
    for i in &old {
        assert!(
            rows.contains(&format!(
                "replace {i} (workers-general-0: instance type t3.medium → t3.large)"
            )),
            "{rows}"
        );
    }
    let up = up_via(&cl, &k.url, &[]);
    assert!(up.ok(), "{}", up.stderr);
    let now = live(&c, &cl.name).await;
    let pool = of(&now, "workers-general-0");
    assert_eq!(pool.len(), 2);
    assert!(
        pool.iter()
            .all(|i| i.instance_type.as_deref() == Some("t3.large"))
    );
    assert!(pool.iter().all(|i| !old.contains(&i.id)));
    // Surge 1: launch one, drain one, launch the next, drain the next.
    let steps: Vec<String> = up
        .events
        .iter()
        .filter(|e| e["event"] == "resource" && e["kind"] == "worker-pool")
        .filter(|e| e["action"] == "created" || e["action"] == "deleted")
        .map(|e| {
            let id = e["aws_id"].as_str().unwrap_or_default();
            let who = if old.iter().any(|o| o == id) {
                "old"
            } else {
                "new"
            };
            format!("{} {who}", e["action"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        steps,
        ["created new", "deleted old", "created new", "deleted old"]
    );
    // Each wait for Ready was one list of the Nodes, then watches from its resourceVersion
    // (a node Ready 2 s after its instance runs; the stand-in ends each window after 300 ms,
    // and the next resumes from the last event or bookmark), with no other list.
    let requests = k.state.lock().unwrap().requests.clone();
    let count = |r: &str| requests.iter().filter(|q| *q == r).count();
    assert!(count("WATCH /api/v1/nodes") >= 3, "{requests:?}");
    assert_eq!(count("GET /api/v1/nodes"), 2, "{requests:?}");
    // Every watch from a version the stand-in gave (a list's, an event's or a bookmark's),
    // each later than the one before.
    let from: Vec<u64> = k
        .state
        .lock()
        .unwrap()
        .watched_from
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(from.windows(2).all(|w| w[0] < w[1]), "{from:?}");
    // The control plane and 2 workers stayed Ready and schedulable through every drain.
    let in_service = k.state.lock().unwrap().in_service_at_cordon.clone();
    assert_eq!(in_service.len(), 2);
    assert!(in_service.iter().all(|n| *n >= 3), "{in_service:?}");
    cl.down();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_node_never_ready_stops_the_roll_naming_it_and_the_next_up_resumes_through_expired_watches()
 {
    let cl = Cluster::with_pools(
        "never-ready",
        "\n[[kubeadm.pools]]\nname = \"general\"\ncount = 1\nsubnets = [0]\n",
    );
    let up = cl.run(&["up", "-f", cl.spec_arg(), "--wait", "running"]);
    assert!(up.ok(), "{}", up.stderr);
    let c = sdk().await;
    let before = live(&c, &cl.name).await;
    let old = of(&before, "workers-general-0")[0].clone();
    cl.edit("count = 1\n", "count = 1\ninstance_type = \"t3.large\"\n");

    // The new node registers but never becomes Ready, and the credentials may list the Nodes
    // but not watch them: the wait lists them instead, and at its deadline (3 s) names the
    // address and why it did not watch; the old node is neither cordoned nor drained.
    let k = stand_in(&c, &cl, 0).await;
    {
        let mut st = k.state.lock().unwrap();
        st.ready_after = std::time::Duration::from_secs(3600);
        st.refuse_watch = true;
    }
    let stuck = up_via(&cl, &k.url, &["--cluster-timeout", "3"]);
    assert_eq!(stuck.code, Some(1), "{}", stuck.stderr);
    let new = live(&c, &cl.name)
        .await
        .into_iter()
        .find(|i| i.logical.as_deref() == Some("workers-general-0") && i.id != old.id)
        .expect("the new worker launched");
    let ip = new.private_ip.clone().unwrap();
    assert!(
        stuck.stderr.contains(&format!(
            "still not Ready: {ip} after 3 s (the limit) (the watch: listing them instead: nodes is forbidden"
        )),
        "{}",
        stuck.stderr
    );
    let requests = std::mem::take(&mut k.state.lock().unwrap().requests);
    let count = |requests: &[String], r: &str| requests.iter().filter(|q| *q == r).count();
    assert_eq!(count(&requests, "WATCH /api/v1/nodes"), 1, "{requests:?}");
    // The first list, then lists in place of watches (each ~0.4 s here: the stand-in looks
    // the instances up for every list).
    assert!(count(&requests, "GET /api/v1/nodes") >= 2, "{requests:?}");
    assert!(k.changes().is_empty(), "{:?}", k.changes());

    // The next `up` finds it not Ready at first; it becomes Ready once the wait watches, and
    // every watch from a resourceVersion is answered 410 Gone: the wait lists again, and the
    // old node is drained; no second launch.
    {
        let mut st = k.state.lock().unwrap();
        st.ready_after = std::time::Duration::ZERO;
        st.not_ready.insert(ip.clone());
        st.ready_at_watch.insert(ip.clone());
        st.refuse_watch = false;
        st.expire_versions = true;
    }
    let resumed = up_via(&cl, &k.url, &[]);
    assert!(resumed.ok(), "{}", resumed.stderr);
    let pool: Vec<String> = of(&live(&c, &cl.name).await, "workers-general-0")
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(pool, [new.id]);
    assert_eq!(resumed.calls("EC2", "RunInstances"), 0);
    // A list, a watch from its version answered 410, a list again (and so on until Ready).
    let requests = k.state.lock().unwrap().requests.clone();
    let at = |r: &str| requests.iter().position(|q| q == r).expect(r);
    let watch = at("WATCH /api/v1/nodes");
    assert!(at("GET /api/v1/nodes") < watch, "{requests:?}");
    assert!(
        requests[watch..].iter().any(|q| q == "GET /api/v1/nodes"),
        "{requests:?}"
    );
    assert_eq!(
        k.state.lock().unwrap().deleted,
        [node_name(old.private_ip.as_deref().unwrap())].into()
    );
    cl.down();
}
