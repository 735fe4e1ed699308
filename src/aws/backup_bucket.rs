//! The etcd snapshots' S3 bucket: found by its name (account and region in it), tagged in
//! CreateBucket, then encrypted, closed to the public and given its lifecycle rule; `down`
//! empties and deletes it.

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

use super::error::{Code, api};
use super::kind::{Apply, Cx, Scope, Tx};
use super::retry::{Backoff, retry};
use super::{AwsError, Clients};
use crate::core::events::Progress;
use crate::core::kinds::backup_bucket::{
    BackupBucket, Drift, ObsBucket, SNAPSHOT_PREFIX, Snapshot,
};
use crate::core::kinds::{Action, Change, Inputs, Kind, Output, Plan};
use crate::core::tags::{self, CLUSTER_TAG};

const RULE_ID: &str = "provision-etcd-snapshots";

impl Apply for BackupBucket {
    async fn observe(c: &Clients, scope: &Scope<'_>) -> Result<Option<ObsBucket>, AwsError> {
        if !scope.wants(Kind::BackupBucket) || !scope.kubeadm() {
            return Ok(None);
        }
        let account = c.account().await?;
        let name = tags::backup_bucket_name(scope.cluster, &c.region, account);
        // Every call names the account the bucket must be in: one of this name in another
        // account answers AccessDenied, and is not ours.
        let tagging =
            c.s3.get_bucket_tagging()
                .bucket(&name)
                .expected_bucket_owner(account)
                .send()
                .await;
        let owner = match tagging {
            Ok(t) => t
                .tag_set()
                .iter()
                .find(|t| t.key() == CLUSTER_TAG)
                .map(|t| t.value().to_string()),
            Err(e) => {
                let e = api("reading the tags of S3 bucket", &name)(e);
                match e.code() {
                    Code::NoSuchBucket => return Ok(None),
                    Code::NoSuchTagSet | Code::AccessDenied => None,
                    _ => return Err(e),
                }
            }
        };
        let owned = owner.as_deref() == Some(scope.cluster);
        if !owned {
            return Ok(Some(ObsBucket {
                name,
                ..ObsBucket::default()
            }));
        }
        // Its settings only for a plan (`down`, `status` and `plan --destroy` need the
        // snapshots alone).
        let settings = async {
            if scope.kinds.is_none() {
                return Ok((None, true, true));
            }
            tokio::try_join!(
                lifecycle_days(c, &name, account),
                public_blocked(c, &name, account),
                encrypted(c, &name, account)
            )
        };
        let ((days, public_blocked, encrypted), snapshots) = tokio::try_join!(
            settings,
            snapshots_under(c, &name, account, SNAPSHOT_PREFIX)
        )?;
        Ok(Some(ObsBucket {
            name,
            owned,
            days,
            public_blocked,
            encrypted,
            snapshots,
        }))
    }

    async fn apply(
        &self,
        cx: &Cx<'_>,
        id: &str,
        change: &Change<Drift>,
        _inputs: &Inputs,
    ) -> Result<Output, AwsError> {
        let c = cx.c;
        let account = c.account().await?;
        let name = tags::backup_bucket_name(&cx.spec.name, &c.region, account);
        if change.action == Action::Keep {
            cx.report
                .resource(id, Self::NAME, Some(&name), Progress::Existing, None);
            return Ok(Output::Id(name));
        }
        let create = change.action == Action::Create;
        let (mut lifecycle, mut public, mut encryption) = (create, create, create);
        for d in &change.drifts {
            match d {
                Drift::Lifecycle { .. } => lifecycle = true,
                Drift::PublicAccess => public = true,
                Drift::Encryption => encryption = true,
            }
        }
        cx.report.resource(
            id,
            Self::NAME,
            Some(&name),
            if create {
                Progress::Creating
            } else {
                Progress::Updating
            },
            None,
        );
        if create {
            self.create(cx, id, &name).await?;
        }
        // A bucket just made may not answer everywhere yet.
        let settle = |e: &AwsError| *e.code() == Code::NoSuchBucket;
        tokio::try_join!(
            async {
                if !public {
                    return Ok(());
                }
                retry(Backoff::EVENTUAL, settle, || {
                    block_public(c, &name, account)
                })
                .await
            },
            async {
                if !encryption {
                    return Ok(());
                }
                retry(Backoff::EVENTUAL, settle, || encrypt(c, &name, account)).await
            },
            async {
                if !lifecycle {
                    return Ok(());
                }
                retry(Backoff::EVENTUAL, settle, || {
                    expire(c, &name, account, self.days)
                })
                .await
            },
        )?;
        cx.report.resource(
            id,
            Self::NAME,
            Some(&name),
            if create {
                Progress::Created
            } else {
                Progress::Updated
            },
            Some(format!("snapshots kept {} days", self.days)),
        );
        Ok(Output::Id(name))
    }

    async fn delete(tx: &Tx<'_>) -> Result<(), AwsError> {
        let Some(b) = tx.obs.bucket.as_ref().filter(|b| b.owned) else {
            return Ok(());
        };
        let id = crate::core::graph::ETCD_BACKUPS;
        tx.report
            .resource(id, Self::NAME, Some(&b.name), Progress::Deleting, None);
        let account = tx.c.account().await?;
        // Whatever is in it now (the control plane is gone, nothing writes any more).
        let keys: Vec<String> = snapshots_under(tx.c, &b.name, account, "")
            .await?
            .into_iter()
            .map(|s| s.key)
            .collect();
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| {
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key(k)
                        .build()
                        .map_err(|e| AwsError::internal(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| AwsError::internal(e.to_string()))?;
            let out =
                tx.c.s3
                    .delete_objects()
                    .bucket(&b.name)
                    .expected_bucket_owner(account)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(api("deleting the snapshots in S3 bucket", &b.name))?;
            if let Some(e) = out.errors().first() {
                return Err(AwsError::api(
                    "deleting the snapshots in S3 bucket",
                    &format!("{}/{}", b.name, e.key().unwrap_or_default()),
                    e.code().unwrap_or_default(),
                    e.message().unwrap_or_default(),
                ));
            }
        }
        match tx
            .c
            .s3
            .delete_bucket()
            .bucket(&b.name)
            .expected_bucket_owner(account)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let e = api("deleting S3 bucket", &b.name)(e);
                if *e.code() != Code::NoSuchBucket {
                    return Err(e);
                }
            }
        }
        tx.report.resource(
            id,
            Self::NAME,
            Some(&b.name),
            Progress::Deleted,
            Some(format!("with {} snapshot(s)", keys.len())),
        );
        Ok(())
    }
}

impl BackupBucket {
    /// CreateBucket with the cluster's tags in the call; a retried call whose first one took
    /// is fine.
    async fn create(&self, cx: &Cx<'_>, id: &str, name: &str) -> Result<(), AwsError> {
        let tags = super::s3_tags(&cx.tags(id, false))?;
        let mut config = CreateBucketConfiguration::builder().set_tags(Some(tags));
        // us-east-1 takes no location constraint.
        if cx.c.region != "us-east-1" {
            config =
                config.location_constraint(BucketLocationConstraint::from(cx.c.region.as_str()));
        }
        match cx
            .c
            .s3
            .create_bucket()
            .bucket(name)
            .create_bucket_configuration(config.build())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = api("creating S3 bucket", name)(e);
                match e.code() {
                    Code::BucketAlreadyOwnedByYou => Ok(()),
                    Code::BucketAlreadyExists => Err(AwsError::unexpected(
                        "creating S3 bucket",
                        name,
                        "another AWS account has a bucket of this name (S3 names are global): choose another cluster name",
                    )),
                    _ => Err(e),
                }
            }
        }
    }
}

async fn block_public(c: &Clients, name: &str, account: &str) -> Result<(), AwsError> {
    c.s3.put_public_access_block()
        .bucket(name)
        .expected_bucket_owner(account)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(api("blocking public access to S3 bucket", name))?;
    Ok(())
}

async fn encrypt(c: &Clients, name: &str, account: &str) -> Result<(), AwsError> {
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| AwsError::internal(e.to_string()))?,
        )
        .build();
    c.s3.put_bucket_encryption()
        .bucket(name)
        .expected_bucket_owner(account)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| AwsError::internal(e.to_string()))?,
        )
        .send()
        .await
        .map_err(api("turning on the default encryption of S3 bucket", name))?;
    Ok(())
}

async fn expire(c: &Clients, name: &str, account: &str, days: u32) -> Result<(), AwsError> {
    let rule = LifecycleRule::builder()
        .id(RULE_ID)
        .filter(
            LifecycleRuleFilter::builder()
                .prefix(SNAPSHOT_PREFIX)
                .build(),
        )
        .status(ExpirationStatus::Enabled)
        .expiration(
            LifecycleExpiration::builder()
                .days(i32::try_from(days).unwrap_or(i32::MAX))
                .build(),
        )
        .build()
        .map_err(|e| AwsError::internal(e.to_string()))?;
    c.s3.put_bucket_lifecycle_configuration()
        .bucket(name)
        .expected_bucket_owner(account)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| AwsError::internal(e.to_string()))?,
        )
        .send()
        .await
        .map_err(api("setting the snapshots' expiry on S3 bucket", name))?;
    Ok(())
}

/// A setting's answer, or `absent` when S3 says it is not set (with `code`).
fn setting<T>(got: Result<T, AwsError>, code: &Code, absent: T) -> Result<T, AwsError> {
    match got {
        Err(e) if e.code() == code => Ok(absent),
        other => other,
    }
}

async fn lifecycle_days(c: &Clients, name: &str, account: &str) -> Result<Option<u32>, AwsError> {
    let got =
        c.s3.get_bucket_lifecycle_configuration()
            .bucket(name)
            .expected_bucket_owner(account)
            .send()
            .await
            .map(|out| {
                out.rules()
                    .iter()
                    .find(|r| r.id() == Some(RULE_ID) && r.status() == &ExpirationStatus::Enabled)
                    .and_then(|r| r.expiration())
                    .and_then(LifecycleExpiration::days)
                    .and_then(|d| u32::try_from(d).ok())
            })
            .map_err(api("reading the lifecycle rules of S3 bucket", name));
    setting(got, &Code::NoSuchLifecycleConfiguration, None)
}

async fn public_blocked(c: &Clients, name: &str, account: &str) -> Result<bool, AwsError> {
    let got =
        c.s3.get_public_access_block()
            .bucket(name)
            .expected_bucket_owner(account)
            .send()
            .await
            .map(|out| {
                out.public_access_block_configuration().is_some_and(|p| {
                    [
                        p.block_public_acls(),
                        p.ignore_public_acls(),
                        p.block_public_policy(),
                        p.restrict_public_buckets(),
                    ]
                    .iter()
                    .all(|b| *b == Some(true))
                })
            })
            .map_err(api("reading the public access block of S3 bucket", name));
    setting(got, &Code::NoSuchPublicAccessBlockConfiguration, false)
}

async fn encrypted(c: &Clients, name: &str, account: &str) -> Result<bool, AwsError> {
    let got =
        c.s3.get_bucket_encryption()
            .bucket(name)
            .expected_bucket_owner(account)
            .send()
            .await
            .map(|out| {
                out.server_side_encryption_configuration()
                    .is_some_and(|s| !s.rules().is_empty())
            })
            .map_err(api("reading the encryption of S3 bucket", name));
    setting(got, &Code::ServerSideEncryptionConfigurationNotFound, false)
}

/// Every object under `prefix`, oldest first.
async fn snapshots_under(
    c: &Clients,
    name: &str,
    account: &str,
    prefix: &str,
) -> Result<Vec<Snapshot>, AwsError> {
    let pages: Vec<_> =
        c.s3.list_objects_v2()
            .bucket(name)
            .expected_bucket_owner(account)
            .prefix(prefix)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(api("listing the snapshots in S3 bucket", name))?;
    let mut out: Vec<Snapshot> = pages
        .iter()
        .flat_map(|p| p.contents())
        .filter_map(|o| {
            Some(Snapshot {
                key: o.key()?.to_string(),
                at: o
                    .last_modified()
                    .map_or(0, aws_smithy_types::DateTime::secs),
                bytes: o.size().unwrap_or(0),
            })
        })
        .collect();
    out.sort_by_key(|s| (s.at, s.key.clone()));
    Ok(out)
}
