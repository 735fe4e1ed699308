//! A small DAG executor: starts every node whose dependencies have finished, up to a
//! concurrency bound, and collects every outcome (house style: report all, then fail).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;

use tokio::task::JoinSet;

/// How one node ended.
#[derive(Debug)]
pub enum Outcome<E> {
    Done,
    Failed(E),
    /// Not run because a dependency failed (named).
    Skipped(String),
}

/// Runs `nodes` (id, dependencies) with `run`, at most `concurrency` at a time.
/// Dependencies on ids that are not in `nodes` count as done.
pub async fn execute<K, E, F, Fut>(
    nodes: Vec<(K, Vec<K>)>,
    concurrency: usize,
    run: F,
) -> Vec<(K, Outcome<E>)>
where
    K: Clone + Eq + Hash + std::fmt::Display + Send + 'static,
    E: Send + 'static,
    F: Fn(K) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let ids: HashSet<K> = nodes.iter().map(|(k, _)| k.clone()).collect();
    let mut pending: Vec<(K, Vec<K>)> = nodes
        .into_iter()
        .map(|(k, d)| (k, d.into_iter().filter(|d| ids.contains(d)).collect()))
        .collect();
    let mut finished: HashMap<K, bool> = HashMap::new();
    let mut results = Vec::new();
    let mut running: JoinSet<(K, Result<(), E>)> = JoinSet::new();
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
                pending.remove(i);
                let fut = run(k.clone());
                running.spawn(async move { (k, fut.await) });
                continue;
            }
            i += 1;
        }
        match running.join_next().await {
            Some(Ok((k, r))) => {
                finished.insert(k.clone(), r.is_ok());
                results.push((k, r.map_or_else(Outcome::Failed, |()| Outcome::Done)));
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
        let out = execute::<_, (), _, _>(nodes, 8, move |k: &'static str| {
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
        execute::<_, (), _, _>(nodes, 1, |_| async {
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
        let out = execute(nodes, 4, |k: &'static str| async move {
            if k == "a" { Err("boom") } else { Ok(()) }
        })
        .await;
        let get = |id| out.iter().find(|(k, _)| *k == id).map(|(_, o)| o).unwrap();
        assert!(matches!(get("a"), Outcome::Failed("boom")));
        assert!(matches!(get("b"), Outcome::Skipped(d) if d == "a"));
        assert!(matches!(get("c"), Outcome::Skipped(d) if d == "b"));
        assert!(matches!(get("d"), Outcome::Done));
    }
}
