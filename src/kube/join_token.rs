//! The join token: the stored bootstrap token, or one minted on the API server when workers
//! join an existing cluster after it expired (the plan decides which).

use crate::aws::kind::{Apply, Cx, Scope, Tx};
use crate::aws::{AwsError, Clients, ssm};
use crate::core::events::Progress;
use crate::core::graph;
use crate::core::kinds::bootstrap_secret::Bootstrap;
use crate::core::kinds::join_token::{Drift, JoinToken};
use crate::core::kinds::{Action, Change, Inputs, NoState, Output, Plan};
use crate::core::pki;

impl Apply for JoinToken {
    async fn observe(_c: &Clients, _scope: &Scope<'_>) -> Result<NoState, AwsError> {
        Ok(NoState)
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let b = inputs.bootstrap(&self.secret)?;
        if change.action == Action::Keep {
            return Ok(Output::Token(b.token.clone()));
        }
        if !change.drifts.contains(&Drift::Mint) {
            return Ok(Output::Token(b.token.clone()));
        }
        let master = inputs
            .instances(&self.master)?
            .first()
            .ok_or_else(|| AwsError::internal("the control plane exists"))?;
        let ip = master
            .public_ip
            .clone()
            .or_else(|| master.private_ip.clone())
            .unwrap_or_default();
        let server = cx
            .limits
            .api_server
            .clone()
            .unwrap_or_else(|| format!("https://{ip}:6443"));
        mint(cx, id, b, &server).await.map(Output::Token)
    }

    async fn delete(_tx: &Tx<'_>) -> Result<(), AwsError> {
        Ok(())
    }
}

/// Makes a new token on the API server with an admin certificate from our CA (a
/// `bootstrap.kubernetes.io/token` Secret, what `kubeadm token create` makes) and stores it.
async fn mint(cx: &Cx<'_>, id: &str, b: &Bootstrap, server: &str) -> Result<String, AwsError> {
    let now = time::OffsetDateTime::now_utc();
    let token = pki::generate_token()
        .map_err(|e| AwsError::unexpected("generating", "a bootstrap token", e.to_string()))?;
    let expiration = (now + time::Duration::seconds(pki::TOKEN_TTL_SECS))
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| AwsError::unexpected("formatting", "the token expiry", e.to_string()))?;
    cx.report.resource(
        id,
        JoinToken::NAME,
        None,
        Progress::Creating,
        Some(format!("the stored token expired; minting one on {server}")),
    );
    super::probe::create_bootstrap_token(server, &b.ca(), &token, &expiration)
        .await
        .map_err(|e| {
            AwsError::unexpected(
                "minting a bootstrap token for new workers on",
                server,
                format!("{e} (the stored token has expired; the API server must be reachable from here, i.e. from network.admin_cidrs, or give --api-server)"),
            )
        })?;
    let updated = Bootstrap {
        token: token.clone(),
        token_created: Some(now.unix_timestamp()),
        ..b.clone()
    };
    ssm::replace_json(
        cx.c,
        &crate::core::tags::secret_parameter_name(&cx.spec.name),
        &updated,
    )
    .await?;
    cx.report.resource(
        graph::JOIN_TOKEN,
        JoinToken::NAME,
        None,
        Progress::Created,
        None,
    );
    Ok(token)
}
