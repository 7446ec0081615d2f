//! Where uploaded images are kept (`objects.url`): a local directory (the default,
//! `<data_dir>/objects`), or S3 and S3-compatible servers, shared by every replica.
//!
//! S3 settings follow the AWS conventions: whatever `objects.*` leaves unset comes from the
//! `AWS_*` variables (and AWS's own defaults). Requests are signed with ring and sent by reqwest
//! with rustls on ring, like every other outbound call of the server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use crate::config::{ObjectSettings, Settings};
use crate::startup::private_dir;

/// Where `objects.url` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Directory(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `objects.url`, or the data dir's `objects` when it is unset.
    pub fn of(settings: &Settings) -> anyhow::Result<Location> {
        let Some(url) = settings.objects.url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(Location::Directory(settings.data_dir.join("objects")));
        };
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                bail!("objects.url {url:?} names no directory");
            }
            return Ok(Location::Directory(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("objects.url {url:?} names no bucket");
            }
            let prefix = prefix.trim_matches('/').to_owned();
            return Ok(Location::S3 { bucket: bucket.to_owned(), prefix });
        }
        bail!("objects.url {url:?} is neither file://… nor s3://bucket/prefix")
    }
}

/// Opens the store `settings` name. A directory on the distributed backend works only when
/// every replica shares it: say so at start-up.
pub fn open(settings: &Settings, distributed: bool) -> anyhow::Result<Arc<dyn ObjectStore>> {
    match Location::of(settings)? {
        Location::Directory(dir) => {
            if distributed {
                tracing::warn!(
                    dir = %dir.display(),
                    "images are kept in a local directory: an image stays on the replica that \
                     received it unless every replica shares this directory; set objects.url = \
                     \"s3://bucket/prefix\" to keep them in S3"
                );
            }
            private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .with_context(|| format!("cannot open {}", dir.display()))?;
            Ok(Arc::new(store))
        }
        Location::S3 { bucket, prefix } => {
            surge_engine::outbound::install_crypto_provider();
            let store = s3(&settings.objects, &bucket)
                .with_context(|| format!("cannot open the S3 bucket {bucket:?}"))?;
            tracing::info!(bucket = %bucket, prefix = %prefix, "images are kept in S3");
            if prefix.is_empty() {
                Ok(Arc::new(store))
            } else {
                Ok(Arc::new(PrefixStore::new(store, prefix.as_str())))
            }
        }
    }
}

fn s3(objects: &ObjectSettings, bucket: &str) -> object_store::Result<impl ObjectStore> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &objects.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &objects.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &objects.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &objects.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if objects.allow_http {
        builder = builder.with_allow_http(true);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: Option<&str>) -> anyhow::Result<Location> {
        let mut settings = Settings { data_dir: PathBuf::from("/srv/surge"), ..Default::default() };
        settings.objects.url = url.map(str::to_owned);
        Location::of(&settings)
    }

    #[test]
    fn the_url_names_a_directory_or_a_bucket_and_prefix() {
        assert_eq!(at(None).unwrap(), Location::Directory("/srv/surge/objects".into()));
        assert_eq!(
            at(Some("file:///mnt/shared")).unwrap(),
            Location::Directory("/mnt/shared".into())
        );
        assert_eq!(
            at(Some("s3://images/prod/")).unwrap(),
            Location::S3 { bucket: "images".into(), prefix: "prod".into() }
        );
        assert_eq!(
            at(Some("s3://images")).unwrap(),
            Location::S3 { bucket: "images".into(), prefix: String::new() }
        );
        for bad in ["s3://", "file://", "gs://images", "/just/a/path"] {
            assert!(at(Some(bad)).is_err(), "{bad}");
        }
    }
}
