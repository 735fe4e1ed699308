//! Validation of `[[kubeadm.pools]]` (or the legacy `workers` and `instance_type`, one pool named
//! `workers`), and of node labels and taints, which EKS node groups share.

use std::collections::BTreeMap;

use toml::Spanned;

use super::lexical::{check_instance_type, is_label_key};
use super::model::*;
use super::raw::*;
use super::validate::Validator;

/// At most this many pools, so that ids, tags and the plan stay readable.
const MAX_POOLS: usize = 20;

impl Validator<'_> {
    /// The worker pools: `[[kubeadm.pools]]`, or `workers` (with the control plane's instance
    /// type) as the one pool [`DEFAULT_POOL`].
    pub(super) fn pools(
        &mut self,
        k: &RawKubeadm,
        at: std::ops::Range<usize>,
        arch: Option<Arch>,
        zones: usize,
    ) -> Option<Vec<PoolSpec>> {
        match (&k.workers, k.pools.is_empty()) {
            (Some(w), false) => {
                self.err(
                    w,
                    "kubeadm.workers",
                    "use kubeadm.workers (one pool) or [[kubeadm.pools]], not both",
                );
                None
            }
            (None, true) => {
                self.push(at, "kubeadm.pools", "workers are needed: kubeadm.workers = N, or [[kubeadm.pools]] with a name and a count".into());
                None
            }
            (Some(w), true) => {
                let n = *w.get_ref();
                if !(1..=1000).contains(&n) {
                    self.err(w, "kubeadm.workers", format!("{n} workers: a kubeadm cluster needs 1 to 1000 workers (the control plane is tainted against workloads)"));
                    return None;
                }
                Some(vec![PoolSpec {
                    name: DEFAULT_POOL.into(),
                    instance_type: k.instance_type.get_ref().clone(),
                    count: u32::try_from(n).ok()?,
                    labels: BTreeMap::new(),
                    taints: Vec::new(),
                    spot: false,
                    zones: (0..zones).collect(),
                    max_surge: 1,
                    max_unavailable: 0,
                }])
            }
            (None, false) => {
                if k.pools.len() > MAX_POOLS {
                    self.push(
                        at.clone(),
                        "kubeadm.pools",
                        format!("1 to {MAX_POOLS} pools"),
                    );
                }
                let mut out: Vec<PoolSpec> = Vec::new();
                let mut ok = true;
                for (i, p) in k.pools.iter().enumerate() {
                    match self.pool(p, &format!("kubeadm.pools[{i}]"), k, arch, zones) {
                        Some(pool) if out.iter().any(|o| o.name == pool.name) => {
                            let raw = &p.get_ref().name;
                            self.err(
                                raw,
                                &format!("kubeadm.pools[{i}].name"),
                                format!("`{}` is used twice", pool.name),
                            );
                            ok = false;
                        }
                        Some(pool) => out.push(pool),
                        None => ok = false,
                    }
                }
                let total: u32 = out.iter().map(|p| p.count).sum();
                if ok && total > 1000 {
                    self.push(
                        at,
                        "kubeadm.pools",
                        format!("{total} workers in all: at most 1000"),
                    );
                    ok = false;
                }
                ok.then_some(out)
            }
        }
    }

    fn pool(
        &mut self,
        p: &Spanned<RawPool>,
        field: &str,
        k: &RawKubeadm,
        arch: Option<Arch>,
        zones: usize,
    ) -> Option<PoolSpec> {
        let f = |x: &str| format!("{field}.{x}");
        let r = p.get_ref();
        let name = r.name.get_ref();
        let mut ok = true;
        if !is_pool_name(name) {
            self.err(&r.name, &f("name"), format!("`{name}` is not a pool name: 1 to 20 of a-z, 0-9 and -, starting with a letter and ending with a letter or digit"));
            ok = false;
        }
        let instance_type = r.instance_type.as_ref().map_or_else(
            || k.instance_type.get_ref().clone(),
            |t| t.get_ref().clone(),
        );
        if let Some(t) = &r.instance_type {
            match check_instance_type(t.get_ref()) {
                Ok(a) if arch.is_some_and(|b| b != a) => {
                    self.err(t, &f("instance_type"), "every node boots the one image of kubeadm.ami: a pool's instance type must have the control plane's architecture");
                    ok = false;
                }
                Ok(_) => {}
                Err(m) => {
                    self.err(t, &f("instance_type"), m);
                    ok = false;
                }
            }
        }
        let count = *r.count.get_ref();
        if !(0..=1000).contains(&count) {
            self.err(&r.count, &f("count"), format!("{count}: 0 to 1000 workers"));
            ok = false;
        }
        let labels = self.node_labels(&r.labels, field, true);
        let taints = self.node_taints(&r.taints, p.span(), field);
        let zones = match &r.subnets {
            None => Some((0..zones).collect()),
            Some(s) => self.pool_zones(s, &f("subnets"), zones),
        };
        let surge = self.budget(r.max_surge.as_ref(), &f("max_surge"), 1);
        let unavailable = self.budget(r.max_unavailable.as_ref(), &f("max_unavailable"), 0);
        if surge == Some(0) && unavailable == Some(0) {
            let at = r.max_surge.as_ref().map_or(p.span(), Spanned::span);
            self.push(at, &f("max_surge"), "max_surge and max_unavailable are both 0: a replacement could make no progress; allow a surge (the default, 1) or some unavailability".into());
            ok = false;
        }
        let pool = PoolSpec {
            name: name.clone(),
            instance_type,
            count: u32::try_from(count).ok()?,
            labels: labels?,
            taints: taints?,
            spot: r.spot.as_ref().is_some_and(|s| *s.get_ref()),
            zones: zones?,
            max_surge: surge?,
            max_unavailable: unavailable?,
        };
        ok.then_some(pool)
    }

    /// `subnets = [0, 2]`: indexes of the network's public subnets (one per availability zone,
    /// in `network.azs` order).
    fn pool_zones(
        &mut self,
        s: &Spanned<Vec<Spanned<i64>>>,
        field: &str,
        zones: usize,
    ) -> Option<Vec<usize>> {
        let list = s.get_ref();
        if list.is_empty() {
            self.err(s, field, "at least one subnet: indexes of the public subnets, 0 to network.azs - 1 (leave it out for all)");
            return None;
        }
        let mut out: Vec<usize> = Vec::new();
        for i in list {
            let v = *i.get_ref();
            match usize::try_from(v).ok().filter(|v| *v < zones) {
                Some(z) if out.contains(&z) => {
                    self.err(i, field, format!("subnet {z} is listed twice"));
                    return None;
                }
                Some(z) => out.push(z),
                None => {
                    self.err(
                        i,
                        field,
                        format!(
                            "{v}: the network has {zones} public subnet(s), 0 to {}",
                            zones.saturating_sub(1)
                        ),
                    );
                    return None;
                }
            }
        }
        out.sort_unstable();
        Some(out)
    }

    fn budget(&mut self, v: Option<&Spanned<i64>>, field: &str, default: u32) -> Option<u32> {
        let Some(v) = v else {
            return Some(default);
        };
        let n = *v.get_ref();
        if !(0..=100).contains(&n) {
            self.err(v, field, format!("{n}: 0 to 100 nodes"));
            return None;
        }
        u32::try_from(n).ok()
    }

    /// Node labels; `kubelet`: set by the kubelet itself (`--node-labels`), which the API
    /// server's NodeRestriction admission allows only outside kubernetes.io and k8s.io.
    pub(super) fn node_labels(
        &mut self,
        raw: &BTreeMap<String, Spanned<String>>,
        field: &str,
        kubelet: bool,
    ) -> Option<BTreeMap<String, String>> {
        let mut labels = BTreeMap::new();
        let mut ok = true;
        for (k, v) in raw {
            let at = format!("{field}.labels.{k}");
            if !is_label_key(k) {
                self.err(v, &at, format!("`{k}` is not a Kubernetes label key"));
                ok = false;
            } else if kubelet && !kubelet_may_set(k) {
                self.err(v, &at, format!("`{k}`: a kubelet may not label its node under kubernetes.io or k8s.io (only node.kubernetes.io/ and kubelet.kubernetes.io/), so the node would not join; choose another prefix"));
                ok = false;
            }
            let val = v.get_ref();
            if !is_label_value(val) {
                self.err(v, &at, format!("`{val}` is not a Kubernetes label value (63 characters of A-Z a-z 0-9 - _ .)"));
                ok = false;
            }
            labels.insert(k.clone(), val.clone());
        }
        ok.then_some(labels)
    }

    /// Node taints, with EKS's effect names.
    pub(super) fn node_taints(
        &mut self,
        raw: &[Spanned<RawTaint>],
        at: std::ops::Range<usize>,
        field: &str,
    ) -> Option<Vec<Taint>> {
        let mut taints = Vec::new();
        let mut ok = true;
        for (i, t) in raw.iter().enumerate() {
            let r = t.get_ref();
            let f = format!("{field}.taints[{i}]");
            if !is_label_key(&r.key) {
                self.err(
                    t,
                    &format!("{f}.key"),
                    format!("`{}` is not a Kubernetes taint key", r.key),
                );
                ok = false;
            }
            if let Some(v) = r.value.as_ref().filter(|v| !is_label_value(v)) {
                self.err(
                    t,
                    &format!("{f}.value"),
                    format!("`{v}` is not a taint value (63 characters of A-Z a-z 0-9 - _ .)"),
                );
                ok = false;
            }
            // EKS's names, or Kubernetes' (`NoSchedule`), kept as EKS's.
            let effect = ["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"]
                .into_iter()
                .find(|e| *e == r.effect || kubernetes_effect(e) == Some(r.effect.as_str()));
            if effect.is_none() {
                self.err(
                    t,
                    &format!("{f}.effect"),
                    format!(
                        "`{}`: expected \"NO_SCHEDULE\", \"NO_EXECUTE\" or \"PREFER_NO_SCHEDULE\" (or NoSchedule, NoExecute, PreferNoSchedule)",
                        r.effect
                    ),
                );
                ok = false;
            }
            taints.push(Taint {
                key: r.key.clone(),
                value: r.value.clone(),
                effect: effect.unwrap_or_default().to_string(),
            });
        }
        if raw.len() > 50 {
            self.push(at, &format!("{field}.taints"), "at most 50 taints".into());
            ok = false;
        }
        ok.then_some(taints)
    }
}

fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// What NodeRestriction lets a kubelet set on its own node: any label outside the
/// kubernetes.io and k8s.io namespaces, the node.kubernetes.io and kubelet.kubernetes.io ones,
/// and a few well-known labels.
fn kubelet_may_set(key: &str) -> bool {
    const WELL_KNOWN: [&str; 9] = [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    let Some((prefix, _)) = key.rsplit_once('/') else {
        return true;
    };
    let under = |ns: &str| prefix == ns || prefix.ends_with(&format!(".{ns}"));
    if !under("kubernetes.io") && !under("k8s.io") {
        return true;
    }
    WELL_KNOWN.contains(&key) || under("kubelet.kubernetes.io") || under("node.kubernetes.io")
}

/// 1 to 20 of a-z, 0-9 and `-`, starting with a letter, not ending with `-`.
fn is_pool_name(n: &str) -> bool {
    (1..=20).contains(&n.len())
        && n.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && !n.ends_with('-')
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelets_may_not_label_themselves_under_kubernetes_io() {
        assert!(kubelet_may_set("team"));
        assert!(kubelet_may_set("example.com/gpu"));
        assert!(kubelet_may_set("node.kubernetes.io/pool"));
        assert!(kubelet_may_set("topology.kubernetes.io/zone"));
        assert!(!kubelet_may_set("node-role.kubernetes.io/worker"));
        assert!(!kubelet_may_set("kubernetes.io/role"));
        assert!(!kubelet_may_set("example.k8s.io/x"));
        assert!(kubelet_may_set("notkubernetes.io/x"));
    }

    #[test]
    fn pool_names_are_short_dns_labels() {
        assert!(is_pool_name("gpu"));
        assert!(is_pool_name("spot-2"));
        assert!(!is_pool_name("2fast"));
        assert!(!is_pool_name("Gpu"));
        assert!(!is_pool_name("gpu-"));
        assert!(!is_pool_name(&"a".repeat(21)));
    }
}
