use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{validate_key, ObjectInfo, ObjectMeta, ObjectStore, Part, StorageError};

/// S3 backend settings. `endpoint` is empty for AWS itself; set it (with `path_style`) for
/// S3-compatible servers. Credentials come from these fields when set, else from the
/// standard AWS chain (env, profile, instance role).
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000`; empty for AWS.
    pub endpoint: String,
    /// Must match the server's region (`us-east-1` for s3s-fs, `garage` for Garage).
    pub region: String,
    pub bucket: String,
    /// Path-style URLs (`endpoint/bucket/key`); needed by most S3-compatible servers.
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Key prefix inside the bucket, e.g. `media/`.
    pub prefix: String,
    /// Create the bucket at start-up when it does not exist (local stacks and tests).
    pub create_bucket: bool,
}

// The secret key never reaches a log line or an error message.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &if self.secret_access_key.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("prefix", &self.prefix)
            .field("create_bucket", &self.create_bucket)
            .finish()
    }
}

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

fn backend_err<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> StorageError {
    let msg = match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("no message")
        ),
        None => format!("{e:?}").chars().take(300).collect(),
    };
    StorageError::Backend(msg)
}

impl S3Store {
    pub async fn connect(cfg: S3Config) -> Result<Self, StorageError> {
        if cfg.bucket.is_empty() {
            return Err(StorageError::Backend("s3 bucket is not configured".into()));
        }
        let region = if cfg.region.is_empty() {
            "us-east-1".to_string()
        } else {
            cfg.region.clone()
        };
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region));
        if !cfg.access_key_id.is_empty() {
            loader = loader.credentials_provider(Credentials::new(
                cfg.access_key_id.clone(),
                cfg.secret_access_key.clone(),
                None,
                None,
                "caudal-config",
            ));
        }
        let shared = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if !cfg.endpoint.is_empty() {
            b = b.endpoint_url(cfg.endpoint.clone());
        }
        let client = Client::from_conf(b.build());
        let store = Self {
            client,
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
        };
        if cfg.create_bucket {
            store.ensure_bucket().await?;
        }
        Ok(store)
    }

    async fn ensure_bucket(&self) -> Result<(), StorageError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("");
                if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
                    Ok(())
                } else {
                    Err(backend_err(e))
                }
            }
        }
    }

    fn full_key(&self, key: &str) -> Result<String, StorageError> {
        validate_key(key)?;
        Ok(format!("{}{}", self.prefix, key))
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<(), StorageError> {
        let k = self.full_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(k)
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let k = self.full_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(k)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    StorageError::NotFound(key.to_string())
                } else {
                    backend_err(e)
                }
            })?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        Ok(data.into_bytes())
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StorageError> {
        let k = self.full_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(k)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                    StorageError::NotFound(key.to_string())
                } else {
                    backend_err(e)
                }
            })?;
        Ok(ObjectInfo {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            meta: ObjectMeta {
                content_type: out
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                cache_control: out.cache_control().unwrap_or("").to_string(),
            },
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let k = self.full_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(k)
            .send()
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let full = format!("{}{}", self.prefix, prefix);
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(backend_err)?;
            for obj in page.contents() {
                if let Some(k) = obj.key() {
                    if let Some(rel) = k.strip_prefix(self.prefix.as_str()) {
                        out.push(rel.to_string());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let k = self.full_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(k)
            .range(format!("bytes={offset}-{}", offset + len - 1))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    StorageError::NotFound(key.to_string())
                } else if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) {
                    // a range starting at or past the end: nothing there
                    StorageError::Backend(String::new())
                } else {
                    backend_err(e)
                }
            });
        let out = match out {
            Err(StorageError::Backend(m)) if m.is_empty() => return Ok(Bytes::new()),
            other => other?,
        };
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        Ok(data.into_bytes())
    }

    async fn multipart_start(&self, key: &str, meta: &ObjectMeta) -> Result<String, StorageError> {
        let k = self.full_key(key)?;
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(k)
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control)
            .send()
            .await
            .map_err(backend_err)?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| StorageError::Backend("no upload id in the answer".into()))
    }

    async fn multipart_put(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, StorageError> {
        let k = self.full_key(key)?;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(k)
            .upload_id(upload)
            .part_number(number as i32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.meta().code() == Some("NoSuchUpload"))
                {
                    StorageError::NotFound(format!("multipart write {upload}"))
                } else {
                    backend_err(e)
                }
            })?;
        out.e_tag()
            .map(str::to_string)
            .ok_or_else(|| StorageError::Backend("no ETag for the part".into()))
    }

    async fn multipart_complete(
        &self,
        key: &str,
        upload: &str,
        parts: &[Part],
    ) -> Result<(), StorageError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let k = self.full_key(key)?;
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number as i32)
                            .e_tag(&p.tag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(k)
            .upload_id(upload)
            .multipart_upload(done)
            .send()
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn multipart_abort(&self, key: &str, upload: &str) -> Result<(), StorageError> {
        let k = self.full_key(key)?;
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(k)
            .upload_id(upload)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
            Err(e) => Err(backend_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secret_key() {
        let cfg = S3Config {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            ..S3Config::default()
        };
        let shown = format!("{cfg:?} {:?}", crate::StoreConfig::S3(cfg.clone()));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("AKIAEXAMPLE") && shown.contains("***"));
    }

    /// Runs the contract against the S3-compatible server the test stack started
    /// (`CAUDAL_TEST_S3_ENDPOINT`); fails loudly when there is none.
    #[tokio::test]
    async fn s3_store_passes_the_contract_against_a_real_server() {
        let endpoint = std::env::var("CAUDAL_TEST_S3_ENDPOINT").expect(
            "CAUDAL_TEST_S3_ENDPOINT is not set: run the tests through scripts/test.sh, which starts s3s-fs",
        );
        let cfg = S3Config {
            endpoint,
            region: std::env::var("CAUDAL_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
            bucket: format!("contract-{}", uuid::Uuid::new_v4().simple()),
            path_style: true,
            access_key_id: std::env::var("CAUDAL_TEST_S3_ACCESS_KEY")
                .unwrap_or_else(|_| "caudal".into()),
            secret_access_key: std::env::var("CAUDAL_TEST_S3_SECRET_KEY")
                .unwrap_or_else(|_| "caudalsecret".into()),
            prefix: "media/".into(),
            create_bucket: true,
        };
        let store = S3Store::connect(cfg)
            .await
            .expect("connect to the S3-compatible server");
        crate::contract::run(&store).await;
    }

    #[tokio::test]
    async fn wrong_credentials_are_a_clear_error() {
        let endpoint =
            std::env::var("CAUDAL_TEST_S3_ENDPOINT").expect("CAUDAL_TEST_S3_ENDPOINT is not set");
        let cfg = S3Config {
            endpoint,
            region: "us-east-1".into(),
            bucket: "nope".into(),
            path_style: true,
            access_key_id: "wrong".into(),
            secret_access_key: "wrong-secret".into(),
            prefix: String::new(),
            create_bucket: false,
        };
        let store = S3Store::connect(cfg).await.unwrap();
        let meta = ObjectMeta::for_key("a.ts", crate::CachePolicy::Immutable);
        let err = store
            .put("a.ts", Bytes::from_static(b"x"), &meta)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
    }
}
