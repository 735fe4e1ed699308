//! The benchmark's yardstick (`make bench`): the critical path of a spec's graph under the
//! emulator's latency profile, read from the same environment variables as the emulator.
//!
//! Usage: critical_path SPEC [running|status]   (prints JSON: seconds with and without the run's
//! fixed calls, and the chain)
//!        critical_path --upgrade FROM SPEC       (the yardstick of upgrading SPEC's EKS cluster
//!                                                 from version FROM to the spec's: JSON seconds)

fn main() {
    let mut args = std::env::args().skip(1);
    if std::env::args().nth(1).as_deref() == Some("--upgrade") {
        let from = std::env::args()
            .nth(2)
            .expect("usage: critical_path --upgrade FROM SPEC");
        let file = std::env::args()
            .nth(3)
            .expect("usage: critical_path --upgrade FROM SPEC");
        let text = std::fs::read_to_string(&file).expect("reading the spec");
        let (spec, _) = provision::core::spec::parse(&file, &text).expect("a valid spec");
        let e = spec.eks().expect("an EKS spec");
        let minor = provision::core::kinds::eks_upgrade::minor;
        let minors = minor(&e.version).unwrap() - minor(&from).expect("FROM: 1.MINOR");
        let groups: Vec<(u32, u32)> = e
            .nodegroups
            .iter()
            .map(|g| {
                let batch = match g.max_unavailable {
                    None => 1,
                    Some(provision::core::spec::MaxUnavailable::Count(n)) => n,
                    Some(provision::core::spec::MaxUnavailable::Percent(p)) => {
                        (g.desired * p).div_ceil(100).max(1)
                    }
                };
                (g.desired, batch)
            })
            .collect();
        let profile = provision::core::latency::Profile::from_env(|k| std::env::var(k).ok());
        let secs =
            provision::core::latency::upgrade_path(&profile, minors, &groups, !e.addons.is_empty());
        println!("{}", serde_json::json!({"seconds": secs, "minors": minors}));
        return;
    }
    let file = args
        .next()
        .expect("usage: critical_path SPEC [running|status]");
    let wait = match args.next().as_deref() {
        Some("running") => provision::core::latency::InstanceWait::Running,
        _ => provision::core::latency::InstanceWait::Status,
    };
    let text = std::fs::read_to_string(&file).expect("reading the spec");
    let (spec, _) = provision::core::spec::parse(&file, &text).expect("a valid spec");
    let graph = provision::core::graph::build(&spec);
    let profile = provision::core::latency::Profile::from_env(|k| std::env::var(k).ok());
    let (secs, chain) = provision::core::latency::critical_path(&graph, &profile, wait);
    let chain: Vec<serde_json::Value> = chain
        .into_iter()
        .map(|(id, cost)| serde_json::json!({"node": id, "seconds": cost}))
        .collect();
    let fixed = provision::core::latency::FIXED_CALLS * profile.call;
    println!(
        "{}",
        serde_json::json!({
            "seconds": secs,
            "graph_seconds": secs - fixed,
            "fixed_calls": provision::core::latency::FIXED_CALLS,
            "chain": chain,
        })
    );
}
