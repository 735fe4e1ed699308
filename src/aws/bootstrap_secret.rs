//! The bootstrap secret (the CA with its key, the bootstrap token, the cluster id).

use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients, ssm};
use crate::core::events::Progress;
use crate::core::kinds::bootstrap_secret::{Bootstrap, BootstrapSecret, ObsSecret};
use crate::core::kinds::{Action, Change, Inputs, NoDrift, Output, Plan};
use crate::core::pki;
use crate::core::tags;

impl Apply for BootstrapSecret {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Option<ObsSecret>, AwsError> {
        if !scope.kubeadm() {
            return Ok(None);
        }
        let name = tags::secret_parameter_name(scope.cluster);
        let Some(owner) = ssm::owner_tag(c, &name).await? else {
            return Ok(None);
        };
        let owned = owner.as_deref() == Some(scope.cluster);
        let (content, unreadable) = if owned && scope.secret_content {
            match ssm::get_json::<Bootstrap>(c, &name).await {
                Ok(b) => (b, None),
                Err(e @ AwsError::Unexpected { .. }) => (None, Some(e.message().to_string())),
                Err(e) => return Err(e),
            }
        } else {
            (None, None)
        };
        Ok(Some(ObsSecret {
            name,
            owned,
            content,
            unreadable,
        }))
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<NoDrift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        if change.action == Action::Keep {
            let stored = cx
                .obs
                .secret
                .as_ref()
                .and_then(|s| s.content.clone())
                .ok_or_else(|| AwsError::internal("the bootstrap secret was read by discovery"))?;
            cx.report.resource(
                id,
                Self::NAME,
                Some(&self.parameter),
                Progress::Existing,
                None,
            );
            return Ok(Output::Bootstrap(stored));
        }
        cx.report.resource(
            id,
            Self::NAME,
            None,
            Progress::Creating,
            Some(self.parameter.clone()),
        );
        let now = time::OffsetDateTime::now_utc();
        let generated =
            |what: &str, e: pki::PkiError| AwsError::unexpected("generating", what, e.to_string());
        let ca = pki::generate_ca(now).map_err(|e| generated("the cluster CA", e))?;
        let fresh = Bootstrap {
            token_created: Some(now.unix_timestamp()),
            version: 1,
            cluster_id: pki::random_chars(crate::core::kinds::bootstrap_secret::CLUSTER_ID_LEN)
                .map_err(|e| generated("the cluster id", e))?,
            ca_cert_pem: ca.cert_pem,
            ca_key_pem: ca.key_pem,
            token: pki::generate_token().map_err(|e| generated("the bootstrap token", e))?,
        };
        // The stored one wins when a concurrent or earlier run got there first.
        let stored = ssm::put_json(
            cx.c,
            &self.parameter,
            "provision: cluster CA, bootstrap token and cluster id",
            &fresh,
            &cx.tags(id, false),
        )
        .await?;
        if !pki::is_token(&stored.token) {
            return Err(AwsError::unexpected(
                "reading",
                &self.parameter,
                "the stored bootstrap token is malformed",
            ));
        }
        cx.report.resource(
            id,
            Self::NAME,
            Some(&self.parameter),
            Progress::Created,
            None,
        );
        Ok(Output::Bootstrap(stored))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        if let Some(s) = tx.obs.secret.as_ref().filter(|s| s.owned) {
            let logical = crate::core::graph::SECRET;
            tx.report
                .deleting(
                    Some(logical),
                    Self::NAME,
                    &s.name,
                    ssm::delete(tx.c, &s.name),
                )
                .await?;
        }
        for r in &tx.obs.reports {
            tx.report
                .deleting(Some("node-report"), Self::NAME, r, ssm::delete(tx.c, r))
                .await?;
        }
        Ok(())
    }
}
