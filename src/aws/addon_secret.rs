//! The add-ons' generated passwords, and the log writer's apart.

use super::kind::{Apply, Cx, Scope, Tx};
use super::{AwsError, Clients, ssm};
use crate::core::events::Progress;
use crate::core::kinds::addon_secret::{
    AddonPasswords, AddonSecret, Drift, ObsAddonSecrets, ObsParameter,
};
use crate::core::kinds::{Action, Change, Inputs, Output, Plan};
use crate::core::pki;
use crate::core::tags;

impl Apply for AddonSecret {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<ObsAddonSecrets, AwsError> {
        if !scope.with_addons() {
            return Ok(ObsAddonSecrets::default());
        }
        let find = |name: String| async move {
            Ok::<_, AwsError>(ssm::owner_tag(c, &name).await?.map(|owner| ObsParameter {
                owned: owner.as_deref() == Some(scope.cluster),
                name,
            }))
        };
        let (passwords, writer) = tokio::try_join!(
            find(tags::addons_parameter_name(scope.cluster)),
            find(tags::log_writer_parameter_name(scope.cluster)),
        )?;
        Ok(ObsAddonSecrets { passwords, writer })
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        // The passwords are read only when the log writer's parameter has to be made.
        let (all, action) = match change.action {
            Action::Create => {
                cx.report.resource(
                    id,
                    Self::NAME,
                    None,
                    Progress::Creating,
                    Some(self.parameter.clone()),
                );
                let pw = || {
                    pki::random_chars(24).map_err(|e| {
                        AwsError::unexpected("generating", "an add-on password", e.to_string())
                    })
                };
                let fresh = AddonPasswords {
                    grafana_admin_password: pw()?,
                    elastic_password: pw()?,
                    kibana_system_password: pw()?,
                    fluent_bit_password: pw()?,
                };
                let kept = ssm::put_json(
                    c,
                    &self.parameter,
                    "provision: the add-ons' generated passwords",
                    &fresh,
                    &cx.tags(id, false),
                )
                .await?;
                (Some(kept), Progress::Created)
            }
            _ if change.drifts.contains(&Drift::Writer) => (
                ssm::get_json::<AddonPasswords>(c, &self.parameter).await?,
                Progress::Updated,
            ),
            _ => (None, Progress::Existing),
        };
        // The log writer's password alone, for the nodes: they never see the others.
        if change.action == Action::Create || change.drifts.contains(&Drift::Writer) {
            let all = all.ok_or_else(|| AwsError::internal("the add-ons' secret is stored"))?;
            ssm::put_json(
                c,
                &self.writer,
                "provision: the log writer's password (what the nodes may read)",
                &serde_json::json!({ "fluent_bit_password": all.fluent_bit_password }),
                &cx.tags(id, false),
            )
            .await?;
        }
        cx.report
            .resource(id, Self::NAME, Some(&self.parameter), action, None);
        Ok(Output::Nothing)
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let o = &tx.obs.addon_secrets;
        for p in [&o.passwords, &o.writer]
            .into_iter()
            .flatten()
            .filter(|p| p.owned)
        {
            let logical = crate::core::graph::ADDONS_SECRET;
            tx.report
                .deleting(
                    Some(logical),
                    Self::NAME,
                    &p.name,
                    ssm::delete(tx.c, &p.name),
                )
                .await?;
        }
        Ok(())
    }
}
