//! Inline role policies (deleted with their role).

use super::error::{Code, absent_if, api};
use super::kind::{Apply, Cx, Flavor, Scope, Tx};
use super::retry::{Backoff, is_eventual_not_found, retry};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::graph;
use crate::core::kinds::inline_policy::{Drift, InlinePolicy, ObsPolicy};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use crate::core::tags::{node_role_name, role_name};

impl Apply for InlinePolicy {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Vec<ObsPolicy>, AwsError> {
        let node = node_role_name(scope.cluster, scope.region);
        let addons = role_name(scope.cluster, scope.region, "addons");
        let mut wanted: Vec<(String, &str)> = Vec::new();
        if scope.kubeadm() {
            wanted.push((node.clone(), graph::CA_ACCESS_POLICY));
            wanted.push((node.clone(), graph::NODE_REPORTS_POLICY));
            wanted.push((node.clone(), graph::SSM_AGENT_POLICY));
        }
        if scope.with_addons() {
            wanted.push((addons, graph::ADDONS_ACCESS_POLICY));
            if scope.flavor != Some(Flavor::Kubeadm) {
                wanted.push((node, graph::NODE_LOG_POLICY));
            }
        }
        let found =
            futures::future::try_join_all(wanted.into_iter().map(|(role, name)| async move {
                Ok::<_, AwsError>(get(c, &role, name).await?.map(|document| ObsPolicy {
                    role,
                    name: name.to_string(),
                    document,
                }))
            }))
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if change.action == Action::Keep {
            cx.report
                .resource(id, Self::NAME, Some(&self.name), Progress::Existing, None);
            return Ok(Output::Nothing);
        }
        let doc = self.render_from(inputs, &cx.spec.region)?;
        put(cx.c, &self.role_name, &self.name, &doc).await?;
        let action = if change.action == Action::Create {
            Progress::Created
        } else {
            Progress::Updated
        };
        cx.report.resource(
            id,
            Self::NAME,
            Some(&self.name),
            action,
            Some(self.describe()),
        );
        Ok(Output::Nothing)
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        // Deleted with its role.
        Ok(())
    }
}

/// The document of an inline role policy, decoded (IAM returns it URL-encoded), if it exists.
///
/// # Errors
/// Any error but NoSuchEntity.
pub async fn get(c: &Clients, role: &str, policy: &str) -> Result<Option<String>, AwsError> {
    let r = c
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
        .map_err(api("reading the inline policy of IAM role", role));
    Ok(absent_if(r, Code::NoSuchEntity)?.map(|out| percent_decode(out.policy_document())))
}

/// Creates or replaces an inline role policy.
///
/// # Errors
/// The AWS error of the call.
pub async fn put(c: &Clients, role: &str, policy: &str, document: &str) -> Result<(), AwsError> {
    retry(Backoff::EVENTUAL, is_eventual_not_found, || async {
        c.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy)
            .policy_document(document)
            .send()
            .await
            .map_err(api("setting the inline policy of IAM role", role))
    })
    .await?;
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn policy_documents_are_url_decoded() {
        assert_eq!(super::percent_decode("%7B%22a%22%3A%201%7D"), "{\"a\": 1}");
        assert_eq!(super::percent_decode("{\"a\":1}"), "{\"a\":1}");
        assert_eq!(super::percent_decode("100%"), "100%");
    }
}
