//! The benchmark's yardstick (`make bench`): the critical path of a spec's graph under the
//! emulator's latency profile, read from the same environment variables as the emulator.
//!
//! Usage: critical_path SPEC [running|status]   (prints JSON: seconds with and without the run's
//! fixed calls, and the chain)

fn main() {
    let mut args = std::env::args().skip(1);
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
