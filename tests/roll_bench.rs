//! `make bench`'s rolling replacement (ignored by `cargo test`: a benchmark, it asserts
//! nothing about time): a pool of 6 workers whose instance type changes, replaced with a surge
//! of 1 and of 3, under the emulator's scaled latency profile with provision polling at the
//! same scale, through the stand-in API server (a Node is Ready once its instance runs), against
//! its yardstick (`core::latency::roll_path`). Prints a Markdown table.

mod common;

use std::time::Instant;

use common::{Cluster, OwnEmulator, Run, kube_stand_in_following};
use provision::core::latency::{Profile, roll_path};

const RUNS: usize = 2;
// PROVISION_BENCH_EVENTS=DIR keeps each replacement's events (JSON lines) and its stderr there (with
// PROVISION_LOG=aws_smithy_runtime::client::orchestrator=debug,aws_sdk_ec2=debug,..., every
// call's start and end).

fn pool_cluster(surge: u32, run: usize) -> Cluster {
    Cluster::with_pools(
        &format!("bench-roll-s{surge}-{run}"),
        &format!("\n[[kubeadm.pools]]\nname = \"general\"\ncount = 6\nmax_surge = {surge}\n"),
    )
}

fn run(emu: &OwnEmulator, cl: &Cluster, args: &[&str]) -> Run {
    let mut cmd = emu.command(cl, args);
    cmd.env("PROVISION_TIME_SCALE", "0.0166667");
    tokio::task::block_in_place(|| Run::from_output(cmd.output().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: make bench"]
async fn rolling_replacement_of_six_workers_against_its_yardstick() {
    let emu = OwnEmulator::start(&[("PROVISION_EMULATOR_PROFILE", "scaled")]);
    let c = emu.sdk().await;
    println!(
        "| surge | run | replacement s | yardstick s | ratio | calls | RunInstances | TerminateInstances | DescribeInstances |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for surge in [1, 3] {
        for r in 1..=RUNS {
            let cl = pool_cluster(surge, r);
            let up = run(
                &emu,
                &cl,
                &[
                    "up",
                    "-f",
                    cl.spec_arg(),
                    "--wait",
                    "running",
                    "--no-kubeconfig",
                ],
            );
            assert!(up.ok(), "{}", up.stderr);
            cl.edit("count = 6\n", "count = 6\ninstance_type = \"t3.large\"\n");
            let k = kube_stand_in_following(&c, &cl, &emu.url).await;
            let args = [
                "up",
                "-f",
                cl.spec_arg(),
                "--wait",
                "running",
                "--no-kubeconfig",
                "--api-server",
                &k.url,
            ];
            let t0 = Instant::now();
            let roll = run(&emu, &cl, &args);
            let secs = t0.elapsed().as_secs_f64();
            assert!(roll.ok(), "{}", roll.stderr);
            if let Ok(dir) = std::env::var("PROVISION_BENCH_EVENTS") {
                let lines: Vec<String> = roll.events.iter().map(|e| e.to_string()).collect();
                std::fs::write(format!("{dir}/roll-s{surge}-{r}.jsonl"), lines.join("\n")).unwrap();
                std::fs::write(format!("{dir}/roll-s{surge}-{r}.stderr"), &roll.stderr).unwrap();
            }
            assert_eq!(
                k.state.lock().unwrap().deleted.len(),
                6,
                "six nodes drained"
            );
            let path = roll_path(&Profile::SCALED, 6, surge);
            println!(
                "| {surge} | {r} | {secs:.2} | {path:.2} | {:.2} | {} | {} | {} | {} |",
                secs / path,
                roll.total_calls(),
                roll.calls("EC2", "RunInstances"),
                roll.calls("EC2", "TerminateInstances"),
                roll.calls("EC2", "DescribeInstances"),
            );
            assert!(run(&emu, &cl, &["down", "-f", cl.spec_arg()]).ok());
        }
    }
}
