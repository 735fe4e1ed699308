//! A small DAG executor: starts every node whose dependencies have finished, up to a
//! concurrency bound, hands it the outputs of exactly its dependencies, and collects every
//! outcome (house style: report all, then fail).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::task::JoinSet;

/// How one node ended.
#[derive(Debug)]
pub enum Outcome<O, E> {
    Done(Arc<O>),
    Failed(E),
    /// Not run because a dependency failed (named).
    Skipped(String),
}

/// Runs `nodes` (id, dependencies) with `run`, at most `concurrency` at a time; `run` gets the
/// node and the outputs of its dependencies. Dependencies on ids that are not in `nodes` count
/// as done (and give no output).
pub async fn execute<K, O, E, F, Fut>(
    nodes: Vec<(K, Vec<K>)>,
    concurrency: usize,
    run: F,
) -> Vec<(K, Outcome<O, E>)>
where
    K: Clone + Eq + Hash + std::fmt::Display + Send + 'static,
    O: Send + Sync + 'static,
    E: Send + 'static,
    F: Fn(K, HashMap<K, Arc<O>>) -> Fut,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let ids: HashSet<K> = nodes.iter().map(|(k, _)| k.clone()).collect();
    let mut pending: Vec<(K, Vec<K>)> = nodes
        .into_iter()
        .map(|(k, d)| (k, d.into_iter().filter(|d| ids.contains(d)).collect()))
        .collect();
    let mut finished: HashMap<K, bool> = HashMap::new();
    let mut outputs: HashMap<K, Arc<O>> = HashMap::new();
    let mut results = Vec::new();
    let mut running: JoinSet<(K, Result<O, E>)> = JoinSet::new();
    loop {
        // Skip whatever depends on a failure; start whatever is ready.
        let mut i = 0;
        while i < pending.len() {
            let (k, deps) = &pending[i];
            if let Some(bad) = deps.iter().find(|d| finished.get(*d) == Some(&false)) {
                let bad = bad.to_string();
                let (k, _) = pending.remove(i);
                finished.insert(k.clone(), false);
                results.push((k, Outcome::Skipped(bad)));
                i = 0;
                continue;
            }
            if running.len() < concurrency && deps.iter().all(|d| finished.get(d) == Some(&true)) {
                let k = k.clone();
                let inputs: HashMap<K, Arc<O>> = deps
                    .iter()
                    .filter_map(|d| outputs.get(d).map(|o| (d.clone(), o.clone())))
                    .collect();
                pending.remove(i);
                let fut = run(k.clone(), inputs);
                running.spawn(async move { (k, fut.await) });
                continue;
            }
            i += 1;
        }
        match running.join_next().await {
            Some(Ok((k, r))) => {
                finished.insert(k.clone(), r.is_ok());
                match r {
                    Ok(o) => {
                        let o = Arc::new(o);
                        outputs.insert(k.clone(), o.clone());
                        results.push((k, Outcome::Done(o)));
                    }
                    Err(e) => results.push((k, Outcome::Failed(e))),
                }
            }
            Some(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            None => break,
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn independent_nodes_run_concurrently_and_order_is_respected() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes = vec![("a", vec![]), ("b", vec![]), ("c", vec!["a", "b"])];
        let start = tokio::time::Instant::now();
        let l = log.clone();
        let out = execute::<_, (), (), _, _>(nodes, 8, move |k: &'static str, _| {
            let l = l.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                l.lock().unwrap().push(k);
                Ok(())
            }
        })
        .await;
        assert_eq!(out.len(), 3);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(2),
            "a and b overlap, c follows"
        );
        assert_eq!(log.lock().unwrap().last(), Some(&"c"));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_one_serialises() {
        let nodes = vec![("a", vec![]), ("b", vec![]), ("c", vec![])];
        let start = tokio::time::Instant::now();
        execute::<_, (), (), _, _>(nodes, 1, |_, _| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn failure_skips_dependents_but_not_others() {
        let nodes = vec![
            ("a", vec![]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec![]),
        ];
        let out = execute(nodes, 4, |k: &'static str, _| async move {
            if k == "a" { Err("boom") } else { Ok(()) }
        })
        .await;
        let get = |id| out.iter().find(|(k, _)| *k == id).map(|(_, o)| o).unwrap();
        assert!(matches!(get("a"), Outcome::Failed("boom")));
        assert!(matches!(get("b"), Outcome::Skipped(d) if d == "a"));
        assert!(matches!(get("c"), Outcome::Skipped(d) if d == "b"));
        assert!(matches!(get("d"), Outcome::Done(_)));
    }

    #[tokio::test]
    async fn a_node_gets_the_outputs_of_its_dependencies_and_no_others() {
        let nodes = vec![
            ("a", vec![]),
            ("b", vec![]),
            ("c", vec!["a"]),
            ("d", vec!["b", "c"]),
        ];
        let out = execute::<_, String, (), _, _>(nodes, 4, |k: &'static str, inputs| async move {
            let mut seen: Vec<String> = inputs.iter().map(|(d, o)| format!("{d}={o}")).collect();
            seen.sort();
            Ok(format!("{k}[{}]", seen.join(",")))
        })
        .await;
        let get = |id| match out.iter().find(|(k, _)| *k == id).map(|(_, o)| o) {
            Some(Outcome::Done(o)) => o.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(get("c"), "c[a=a[]]");
        assert_eq!(get("d"), "d[b=b[],c=c[a=a[]]]");
    }
}
