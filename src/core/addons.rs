//! The add-on instances' user data: monitoring (Prometheus + Grafana), logging (Elasticsearch +
//! Kibana) and tracing (Jaeger v2), each as pinned containers with restart policies and their
//! data on the instance's volume, configured to see the cluster: Prometheus discovers every
//! instance carrying the cluster's tag through `ec2_sd_configs`, Grafana has it as its data
//! source and a node dashboard, Elasticsearch has security on with passwords provision made.
//!
//! No password is in user data: the instance reads them at boot from the add-ons' SSM parameter
//! with its role (the same SigV4 script the control plane uses for the CA).

use super::cloudinit::{CloudConfig, File};
use super::spec::{Addon, AddonSpec};
use super::tags::{CLUSTER_TAG, RESOURCE_TAG};

/// Where the add-on scripts and configuration live on the instance.
const ETC: &str = "/etc/provision";
/// Where the containers keep their data (the instance's EBS volume).
pub const DATA: &str = "/var/lib/provision";
const FETCH_PATH: &str = "/usr/local/sbin/provision-fetch-secrets.py";
const SECRETS_ENV: &str = "/etc/provision/secrets.env";
const SETUP_PATH: &str = "/usr/local/sbin/provision-addon.sh";

/// Everything an add-on's user data needs besides its spec.
#[derive(Debug, Clone)]
pub struct AddonInput<'a> {
    pub cluster: &'a str,
    /// Where Prometheus's EC2 discovery looks (without it, it asks instance metadata, and
    /// promtool refuses the file).
    pub region: &'a str,
    /// The add-ons' SSM parameter (passwords).
    pub parameter: &'a str,
}

/// Images, by the name used in `[addons.*].versions`.
fn image(name: &str, tag: &str) -> String {
    match name {
        "prometheus" => format!("quay.io/prometheus/prometheus:{tag}"),
        "grafana" => format!("docker.io/grafana/grafana:{tag}"),
        "elasticsearch" => format!("docker.elastic.co/elasticsearch/elasticsearch:{tag}"),
        "kibana" => format!("docker.elastic.co/kibana/kibana:{tag}"),
        "fluent_bit" => format!("cr.fluentbit.io/fluent/fluent-bit:{tag}"),
        "jaeger" => format!("docker.io/jaegertracing/jaeger:{tag}"),
        other => format!("{other}:{tag}"),
    }
}

fn version<'a>(s: &'a AddonSpec, name: &str) -> &'a str {
    s.versions.get(name).map_or("", String::as_str)
}

/// The Prometheus configuration: itself, and node_exporter on every running instance tagged
/// with the cluster (nodes and add-ons), labelled with the instance's logical id.
pub fn prometheus_config(cluster: &str, region: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 30s
  evaluation_interval: 30s
  external_labels:
    cluster: "{cluster}"
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
  - job_name: node
    ec2_sd_configs:
      - region: "{region}"
        port: 9100
        refresh_interval: 60s
        filters:
          - name: "tag:{CLUSTER_TAG}"
            values: ["{cluster}"]
          - name: instance-state-name
            values: ["running"]
    relabel_configs:
      - source_labels: [__meta_ec2_tag_Name]
        target_label: instance
      - source_labels: [__meta_ec2_tag_{resource}]
        target_label: role
      - source_labels: [__meta_ec2_availability_zone]
        target_label: zone
  # EKS managed nodes belong to their node group, which tags them eks:cluster-name.
  - job_name: eks-node
    ec2_sd_configs:
      - region: "{region}"
        port: 9100
        refresh_interval: 60s
        filters:
          - name: "tag:eks:cluster-name"
            values: ["{cluster}"]
          - name: instance-state-name
            values: ["running"]
    relabel_configs:
      - source_labels: [__meta_ec2_private_dns_name]
        target_label: instance
      - source_labels: [__meta_ec2_tag_eks_nodegroup_name]
        target_label: nodegroup
      - source_labels: [__meta_ec2_availability_zone]
        target_label: zone
"#,
        resource = RESOURCE_TAG.replace([':', '/', '.', '-'], "_"),
    )
}

/// Grafana's provisioned data source.
pub fn grafana_datasource() -> String {
    r#"apiVersion: 1
datasources:
  - name: Prometheus
    uid: prometheus
    type: prometheus
    access: proxy
    url: http://localhost:9090
    isDefault: true
    editable: false
"#
    .to_string()
}

/// Grafana's dashboard provider (the folder the node dashboard is in).
pub fn grafana_dashboard_provider() -> String {
    r#"apiVersion: 1
providers:
  - name: provision
    folder: provision
    type: file
    disableDeletion: true
    allowUiUpdates: false
    options:
      path: /var/lib/grafana/dashboards
"#
    .to_string()
}

/// A node dashboard: up, CPU, memory, disk and network per instance.
pub fn grafana_node_dashboard(cluster: &str) -> String {
    let panel = |id: u32, title: &str, expr: &str, unit: &str, x: u32, y: u32| {
        serde_json::json!({
            "id": id, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{instance}}"}],
        })
    };
    serde_json::json!({
        "uid": "provision-nodes",
        "title": format!("{cluster}: nodes"),
        "tags": ["provision", "node_exporter"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": [
            panel(1, "Up", "up{job=\"node\"}", "none", 0, 0),
            panel(2, "CPU busy", "1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))", "percentunit", 12, 0),
            panel(3, "Memory used", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "percentunit", 0, 8),
            panel(4, "Root disk used", "1 - node_filesystem_avail_bytes{mountpoint=\"/\"} / node_filesystem_size_bytes{mountpoint=\"/\"}", "percentunit", 12, 8),
            panel(5, "Network received", "sum by (instance) (rate(node_network_receive_bytes_total{device!=\"lo\"}[5m]))", "Bps", 0, 16),
            panel(6, "Network sent", "sum by (instance) (rate(node_network_transmit_bytes_total{device!=\"lo\"}[5m]))", "Bps", 12, 16),
        ],
    })
    .to_string()
}

/// The shared part of every add-on's setup script: Docker, node_exporter, the passwords.
fn setup_head() -> String {
    format!(
        r#"#!/bin/bash
# The passwords (grafana_admin_password, elastic_password, ...) come from the env file below.
# shellcheck disable=SC2154
# Add-on bootstrap, rendered by provision: Docker, node_exporter, the passwords, then the
# containers (restart policy unless-stopped, host networking, data under {DATA}).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

retry() {{
  local n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 20 ]; then
      # The command's name only: its arguments may hold a password.
      echo "provision: giving up on: $1" >&2
      return 1
    fi
    sleep 6
  done
}}

retry apt-get update -q
retry apt-get install -y -q docker.io prometheus-node-exporter
systemctl enable --now docker prometheus-node-exporter
install -d -m 0755 {DATA}
# The passwords, from the add-ons' SSM parameter, as an env file only root can read.
python3 {FETCH_PATH}
chmod 0600 {SECRETS_ENV}
set -a
# shellcheck disable=SC1091
. {SECRETS_ENV}
set +a
: "${{grafana_admin_password:?}}" "${{elastic_password:?}}" "${{kibana_system_password:?}}" "${{fluent_bit_password:?}}"

# The containers get their passwords as exported variables (`-e NAME`, no value on the
# command line).
export GF_SECURITY_ADMIN_PASSWORD="${{grafana_admin_password}}"
export ELASTIC_PASSWORD="${{elastic_password}}"
export ELASTICSEARCH_PASSWORD="${{kibana_system_password}}"

start() {{
  local name=$1
  shift
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --restart unless-stopped --network host --log-opt max-size=50m "$@"
}}

run() {{
  retry start "$@"
}}
"#
    )
}

/// An add-on's user data.
pub fn cloud_config(addon: Addon, spec: &AddonSpec, input: &AddonInput<'_>) -> CloudConfig {
    let mut files = vec![File {
        path: FETCH_PATH.into(),
        permissions: "0700",
        content: super::cloudinit::NODE_SCRIPT
            .replace("__PARAMETER__", input.parameter)
            .replace("__OUTPUT__", SECRETS_ENV),
    }];
    let mut script = setup_head();
    match addon {
        Addon::Monitoring => {
            files.push(File {
                path: format!("{ETC}/prometheus.yml"),
                permissions: "0644",
                content: prometheus_config(input.cluster, input.region),
            });
            files.push(File {
                path: format!("{ETC}/grafana/provisioning/datasources/prometheus.yaml"),
                permissions: "0644",
                content: grafana_datasource(),
            });
            files.push(File {
                path: format!("{ETC}/grafana/provisioning/dashboards/provision.yaml"),
                permissions: "0644",
                content: grafana_dashboard_provider(),
            });
            files.push(File {
                path: format!("{ETC}/grafana/dashboards/nodes.json"),
                permissions: "0644",
                content: grafana_node_dashboard(input.cluster) + "\n",
            });
            script.push_str(&format!(
                r#"
install -d -m 0755 -o 65534 -g 65534 {DATA}/prometheus
install -d -m 0755 -o 472 -g 0 {DATA}/grafana
run prometheus -v {ETC}/prometheus.yml:/etc/prometheus/prometheus.yml:ro \
  -v {DATA}/prometheus:/prometheus \
  {prometheus} --config.file=/etc/prometheus/prometheus.yml --storage.tsdb.path=/prometheus \
  --storage.tsdb.retention.time=15d --web.listen-address=:9090
run grafana -e GF_SECURITY_ADMIN_USER=admin -e GF_SECURITY_ADMIN_PASSWORD \
  -e GF_USERS_ALLOW_SIGN_UP=false -e GF_ANALYTICS_REPORTING_ENABLED=false \
  -v {DATA}/grafana:/var/lib/grafana \
  -v {ETC}/grafana/provisioning:/etc/grafana/provisioning:ro \
  -v {ETC}/grafana/dashboards:/var/lib/grafana/dashboards:ro \
  {grafana}
"#,
                prometheus = image("prometheus", version(spec, "prometheus")),
                grafana = image("grafana", version(spec, "grafana")),
            ));
        }
        Addon::Logging => {
            script.push_str(&format!(
                r#"
# Elasticsearch's production check (kubeadm-bootstrap.md §6).
sysctl -w vm.max_map_count=1048576
echo 'vm.max_map_count=1048576' > /etc/sysctl.d/90-provision-elasticsearch.conf
install -d -m 0775 -o 1000 -g 0 {DATA}/elasticsearch
run elasticsearch -e discovery.type=single-node -e xpack.security.enabled=true \
  -e xpack.security.http.ssl.enabled=false -e ELASTIC_PASSWORD \
  -e ES_JAVA_OPTS="-Xms1g -Xmx1g" -v {DATA}/elasticsearch:/usr/share/elasticsearch/data \
  {elasticsearch}
# Credentials and bodies with passwords go through files only root can read, never arguments.
umask 077
printf 'machine localhost login elastic password %s\n' "${{elastic_password}}" > /run/provision-es.netrc
printf '{{"password":"%s"}}' "${{kibana_system_password}}" > /run/provision-kibana.json
printf '{{"password":"%s","roles":["provision_logs_writer"]}}' "${{fluent_bit_password}}" > /run/provision-fluent-bit.json
umask 022
es() {{
  curl -sf --netrc-file /run/provision-es.netrc -H 'Content-Type: application/json' "$@"
}}
retry es http://localhost:9200/_cluster/health >/dev/null
# Kibana's own user, and a writer for the nodes' Fluent Bit (its indices only).
retry es -X POST http://localhost:9200/_security/user/kibana_system/_password \
  -d @/run/provision-kibana.json >/dev/null
retry es -X PUT http://localhost:9200/_security/role/provision_logs_writer \
  -d '{{"cluster":["monitor"],"indices":[{{"names":["logs-*","logstash-*"],"privileges":["create_index","create_doc","auto_configure","view_index_metadata"]}}]}}' >/dev/null
retry es -X PUT http://localhost:9200/_security/user/fluent_bit \
  -d @/run/provision-fluent-bit.json >/dev/null
rm -f /run/provision-es.netrc /run/provision-kibana.json /run/provision-fluent-bit.json
run kibana -e ELASTICSEARCH_HOSTS=http://localhost:9200 -e ELASTICSEARCH_USERNAME=kibana_system \
  -e ELASTICSEARCH_PASSWORD -e SERVER_HOST=0.0.0.0 \
  {kibana}
"#,
                elasticsearch = image("elasticsearch", version(spec, "elasticsearch")),
                kibana = image("kibana", version(spec, "kibana")),
            ));
        }
        Addon::Tracing => {
            script.push_str(&format!(
                r#"
# Jaeger v2 all-in-one: UI 16686, OTLP gRPC 4317 and HTTP 4318 (in-memory storage).
run jaeger {jaeger}
"#,
                jaeger = image("jaeger", version(spec, "jaeger")),
            ));
        }
    }
    script.push_str(&format!(
        "install -d -m 0755 {DATA}\ndate -u +%FT%TZ > {DATA}/{}-done\n",
        addon.as_str()
    ));
    files.push(File {
        path: SETUP_PATH.into(),
        permissions: "0755",
        content: script,
    });
    CloudConfig {
        files,
        gz_files: Vec::new(),
        runcmd: vec![vec![SETUP_PATH.to_string()]],
    }
}

/// node_exporter's release for nodes without a distribution package (EKS's Amazon Linux 2023).
pub const NODE_EXPORTER_VERSION: &str = "1.10.2";
const EKS_AGENTS_PATH: &str = "/usr/local/sbin/provision-node-agents.sh";

/// The EKS nodes' part of the launch template's user data (cloud-config, in the MIME document
/// EKS merges with its own node configuration): node_exporter from its release, checked
/// against the release's checksums, as a systemd service on 9100.
pub fn eks_node_agents(agents: &NodeAgents<'_>) -> CloudConfig {
    let mut files = Vec::new();
    let mut gz_files = Vec::new();
    let mut runcmd = Vec::new();
    // Started as transient systemd units, not run by cloud-init: on AL2023 the node joins the
    // cluster (nodeadm-run) only after cloud-init's final stage, which must not wait for
    // downloads.
    let background = |unit: &str, path: &str| {
        vec![
            "systemd-run".to_string(),
            "--no-block".to_string(),
            format!("--unit={unit}"),
            path.to_string(),
        ]
    };
    if agents.node_exporter {
        files.push(File {
            path: EKS_AGENTS_PATH.into(),
            permissions: "0755",
            content: node_exporter_script(),
        });
        runcmd.push(background(
            "provision-node-exporter-install",
            EKS_AGENTS_PATH,
        ));
    }
    if let Some(log) = &agents.logging {
        gz_files.push(File {
            path: FETCH_PATH.into(),
            permissions: "0700",
            content: super::cloudinit::NODE_SCRIPT.replace("__PARAMETER__", log.parameter),
        });
        files.push(File {
            path: "/etc/provision/fluent-bit.conf".into(),
            permissions: "0644",
            content: eks_fluent_bit_config(log.es_host),
        });
        files.push(File {
            path: EKS_LOGS_PATH.into(),
            permissions: "0755",
            content: eks_fluent_bit_script(log.fluent_bit_version, log.parameter),
        });
        runcmd.push(background("provision-log-shipper-install", EKS_LOGS_PATH));
    }
    CloudConfig {
        files,
        gz_files,
        runcmd,
    }
}

const EKS_LOGS_PATH: &str = "/usr/local/sbin/provision-log-shipper.sh";

/// What the EKS nodes run for the add-ons.
#[derive(Debug, Clone)]
pub struct NodeAgents<'a> {
    pub node_exporter: bool,
    pub logging: Option<NodeLogging<'a>>,
}

/// Where the EKS nodes ship their logs.
#[derive(Debug, Clone)]
pub struct NodeLogging<'a> {
    pub es_host: &'a str,
    pub fluent_bit_version: &'a str,
    /// The add-ons' SSM parameter (the node role may read it: the Fluent Bit password).
    pub parameter: &'a str,
}

impl NodeAgents<'_> {
    pub fn any(&self) -> bool {
        self.node_exporter || self.logging.is_some()
    }
}

/// Fluent Bit on an EKS node: container logs (the file name carries pod, namespace and
/// container) and the journal, to the logging add-on as the write-only `fluent_bit` user.
pub fn eks_fluent_bit_config(es_host: &str) -> String {
    super::manifests::fluent_bit_config(es_host)
        .replace(
            "[FILTER]\n    Name       kubernetes\n    Match      kube.*\n    Merge_Log  On\n    Keep_Log   Off\n\n",
            "",
        )
        .replace("/fluent-bit/etc/parsers.conf", "/etc/fluent-bit/parsers.conf")
        .replace("/var/fluent-bit/state", "/var/lib/fluent-bit")
}

fn eks_fluent_bit_script(version: &str, parameter: &str) -> String {
    format!(
        r#"#!/bin/bash
# Fluent Bit on this node (Amazon Linux 2023), shipping to the logging add-on; its password is
# read from the add-ons' SSM parameter with the node role, into a file only root can read.
set -euo pipefail
cat > /etc/yum.repos.d/fluent-bit.repo <<'REPO'
[fluent-bit]
name=Fluent Bit
baseurl=https://packages.fluentbit.io/amazonlinux/2023/
gpgcheck=1
repo_gpgcheck=1
gpgkey=https://packages.fluentbit.io/fluentbit.key
enabled=1
REPO
for _ in $(seq 1 10); do
  if dnf install -y "fluent-bit-{version}"; then
    break
  fi
  sleep 10
done
install -d -m 0755 /var/lib/fluent-bit
install -m 0644 /etc/provision/fluent-bit.conf /etc/fluent-bit/fluent-bit.conf
python3 {FETCH_PATH} "{parameter}" /etc/provision/addons.env
umask 077
sed -n 's/^fluent_bit_password=/ES_PASSWORD=/p' /etc/provision/addons.env > /etc/fluent-bit/es.env
rm -f /etc/provision/addons.env
if [ ! -s /etc/fluent-bit/es.env ]; then
  echo "provision: no fluent_bit_password in the log writer's parameter" >&2
  exit 1
fi
install -d -m 0755 /etc/systemd/system/fluent-bit.service.d
printf '[Service]
EnvironmentFile=/etc/fluent-bit/es.env
' > /etc/systemd/system/fluent-bit.service.d/provision.conf
systemctl daemon-reload
systemctl enable --now fluent-bit
"#
    )
}

fn node_exporter_script() -> String {
    format!(
        r#"#!/bin/bash
# node_exporter for the monitoring add-on (Prometheus finds this node by the cluster's tag).
set -euo pipefail
V="{NODE_EXPORTER_VERSION}"
case "$(uname -m)" in
  x86_64) A=amd64 ;;
  aarch64) A=arm64 ;;
  *) echo "provision: no node_exporter for $(uname -m)" >&2; exit 1 ;;
esac
NAME="node_exporter-${{V}}.linux-${{A}}"
URL="https://github.com/prometheus/node_exporter/releases/download/v${{V}}"
WORK=$(mktemp -d)
cd "$WORK"
for _ in $(seq 1 10); do
  if curl -fsSLO "${{URL}}/${{NAME}}.tar.gz" && curl -fsSLO "${{URL}}/sha256sums.txt"; then
    break
  fi
  sleep 10
done
grep " ${{NAME}}.tar.gz\$" sha256sums.txt | sha256sum -c -
tar -xzf "${{NAME}}.tar.gz"
install -m 0755 "${{NAME}}/node_exporter" /usr/local/bin/node_exporter
id node_exporter >/dev/null 2>&1 || useradd -r -s /sbin/nologin node_exporter
cat > /etc/systemd/system/node_exporter.service <<'UNIT'
[Unit]
Description=Prometheus node_exporter (provision)
After=network-online.target

[Service]
User=node_exporter
ExecStart=/usr/local/bin/node_exporter --web.listen-address=:9100
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now node_exporter
rm -rf "$WORK"
"#
    )
}

/// A MIME multi-part document with one cloud-config part: the form EKS wants in a node group's
/// launch template (it adds its own node configuration part).
pub fn mime(cloud_config: &str) -> String {
    const BOUNDARY: &str = "==PROVISION==";
    format!(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\n\n--{BOUNDARY}\nContent-Type: text/cloud-config; charset=\"us-ascii\"\n\n{cloud_config}\n--{BOUNDARY}--\n"
    )
}

/// What `up` prints for an add-on: (what, URL), from its public and private addresses.
pub fn urls(addon: Addon, public: Option<&str>, private: Option<&str>) -> Vec<(String, String)> {
    let ui = |port: u16| public.or(private).map(|ip| format!("http://{ip}:{port}"));
    let inside = |scheme: &str, port: u16| private.map(|ip| format!("{scheme}://{ip}:{port}"));
    let mut out = Vec::new();
    let mut add = |what: &str, u: Option<String>| {
        if let Some(u) = u {
            out.push((what.to_string(), u));
        }
    };
    match addon {
        Addon::Monitoring => {
            add("grafana", ui(3000));
            add("prometheus", ui(9090));
        }
        Addon::Logging => {
            add("kibana", ui(5601));
            add("elasticsearch (from the nodes)", inside("http", 9200));
        }
        Addon::Tracing => {
            add("jaeger", ui(16686));
            add("otlp grpc (from the nodes)", inside("http", 4317));
            add("otlp http (from the nodes)", inside("http", 4318));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::spec;

    pub(crate) fn all_on() -> spec::ClusterSpec {
        let text = "name = \"obs\"\nregion = \"us-east-1\"\nkind = \"kubeadm\"\n[network]\nvpc_cidr = \"10.0.0.0/16\"\nadmin_cidrs = [\"203.0.113.0/24\"]\n[kubeadm]\ncni = \"calico\"\ninstance_type = \"t3.medium\"\nworkers = 2\n[addons]\nmonitoring = true\nlogging = true\ntracing = true\n";
        spec::parse("t.toml", text).unwrap().0
    }

    pub(crate) fn fixtures() -> Vec<(String, CloudConfig)> {
        let spec = all_on();
        let mut out: Vec<(String, CloudConfig)> = spec
            .addons
            .enabled()
            .map(|(a, s)| {
                (
                    format!("addon-{}", a.as_str()),
                    cloud_config(
                        a,
                        s,
                        &AddonInput {
                            cluster: "obs",
                            region: "eu-west-1",
                            parameter: "/provision/obs/addons",
                        },
                    ),
                )
            })
            .collect();
        out.push((
            "eks-node-agents".into(),
            eks_node_agents(&NodeAgents {
                node_exporter: true,
                logging: Some(NodeLogging {
                    es_host: "10.0.0.9",
                    fluent_bit_version: "4.2.0",
                    parameter: "/provision/obs/addons",
                }),
            }),
        ));
        out
    }

    #[test]
    fn eks_node_user_data_is_a_mime_document_with_our_cloud_config() {
        let cc = fixtures().pop().unwrap().1.render();
        let doc = mime(&cc);
        assert!(doc.starts_with(
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"==PROVISION==\""
        ));
        assert!(doc.contains("Content-Type: text/cloud-config"));
        assert!(doc.trim_end().ends_with("--==PROVISION==--"));
        let part = doc.split("\n\n").nth(2).unwrap();
        assert!(part.starts_with("#cloud-config"));
        assert!(doc.contains("sha256sum -c -"), "the download is checked");
        assert!(
            doc.contains("'systemd-run', '--no-block'"),
            "not in cloud-init's way"
        );
        assert!(doc.contains("fluent-bit-4.2.0"), "Fluent Bit pinned");
        assert!(
            doc.contains("encoding: gz+b64"),
            "the fetch script compressed"
        );
        assert!(!doc.contains("fluent_bit_password\":"), "no password");
        assert!(doc.len() <= super::super::cloudinit::USER_DATA_LIMIT);
    }

    #[test]
    fn prometheus_discovers_the_clusters_instances_by_tag() {
        let text = prometheus_config("obs", "eu-west-1");
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let node = &v["scrape_configs"][1];
        assert_eq!(node["job_name"], "node");
        let sd = &node["ec2_sd_configs"][0];
        assert_eq!(sd["region"], "eu-west-1");
        assert_eq!(
            v["scrape_configs"][2]["ec2_sd_configs"][0]["region"],
            "eu-west-1"
        );
        assert_eq!(sd["port"], 9100);
        assert_eq!(sd["filters"][0]["name"], "tag:provision:cluster");
        assert_eq!(sd["filters"][0]["values"][0], "obs");
        assert_eq!(sd["filters"][1]["values"][0], "running");
        let eks = &v["scrape_configs"][2]["ec2_sd_configs"][0]["filters"][0];
        assert_eq!(eks["name"], "tag:eks:cluster-name", "EKS managed nodes");
        assert_eq!(eks["values"][0], "obs");
        assert_eq!(
            node["relabel_configs"][1]["source_labels"][0],
            "__meta_ec2_tag_provision_resource"
        );
    }

    #[test]
    fn grafana_provisioning_is_valid() {
        let ds: serde_json::Value = serde_saphyr::from_str(&grafana_datasource()).unwrap();
        assert_eq!(ds["apiVersion"], 1);
        assert_eq!(ds["datasources"][0]["type"], "prometheus");
        assert_eq!(ds["datasources"][0]["url"], "http://localhost:9090");
        let p: serde_json::Value = serde_saphyr::from_str(&grafana_dashboard_provider()).unwrap();
        assert_eq!(
            p["providers"][0]["options"]["path"],
            "/var/lib/grafana/dashboards"
        );
        let d: serde_json::Value = serde_json::from_str(&grafana_node_dashboard("obs")).unwrap();
        assert_eq!(d["panels"].as_array().unwrap().len(), 6);
        assert!(
            d["panels"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["datasource"]["uid"] == "prometheus")
        );
    }

    #[test]
    fn images_are_pinned_and_no_password_is_in_user_data() {
        for (name, cc) in fixtures()
            .into_iter()
            .filter(|(n, _)| n.starts_with("addon-"))
        {
            let text = cc.render();
            assert!(!text.contains(":latest"), "{name}");
            // What EC2 receives: the document packed.
            let packed = crate::core::userdata::pack(&text).len();
            assert!(
                packed <= super::super::cloudinit::USER_DATA_LIMIT,
                "{name}: {packed}"
            );
            // Passwords come from the env file at boot; only variable names are here, and no
            // command line carries one.
            assert!(text.contains("secrets.env"), "{name}");
            for line in text.lines().filter(|l| l.contains("PASSWORD=\"$")) {
                assert!(
                    line.trim_start().starts_with("export "),
                    "{name}: a password on a command line: {line}"
                );
            }
            assert!(!text.contains("-u \"elastic:"), "{name}");
        }
        let (_, mon) = &fixtures()[0];
        let text = mon.render();
        assert!(text.contains("quay.io/prometheus/prometheus:v3.7.3"));
        assert!(text.contains("grafana/grafana:12.3.0"));
        let (_, log) = &fixtures()[1];
        assert!(log.render().contains("xpack.security.enabled=true"));
    }

    #[test]
    fn urls_use_the_public_address_for_uis_and_the_private_one_for_ingest() {
        let u = urls(Addon::Tracing, Some("198.51.100.9"), Some("10.0.0.9"));
        assert_eq!(
            u[0],
            (
                "jaeger".to_string(),
                "http://198.51.100.9:16686".to_string()
            )
        );
        assert_eq!(u[1].1, "http://10.0.0.9:4317");
    }

    /// promtool (Prometheus's own checker) accepts the configuration; without the region it
    /// refuses it (EC2 discovery cannot find one off an instance).
    #[test]
    fn promtool_accepts_the_prometheus_configuration() {
        let promtool = crate::core::testing::tool("promtool");
        let dir = tempfile::tempdir().unwrap();
        let check = |text: &str| {
            let path = dir.path().join("prometheus.yml");
            std::fs::write(&path, text).unwrap();
            std::process::Command::new(&promtool)
                .args(["check", "config", "--syntax-only"])
                .arg(&path)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_REGION")
                .env_remove("AWS_DEFAULT_REGION")
                .output()
                .unwrap()
        };
        let good = prometheus_config("obs", "eu-west-1");
        let out = check(&good);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = check(&good.replace(
            "      - region: \"eu-west-1\"\n        port",
            "      - port",
        ));
        assert!(!out.status.success(), "refused without a region");
    }
}
