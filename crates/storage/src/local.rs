use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{validate_key, ObjectInfo, ObjectMeta, ObjectStore, Part, StorageError};

/// Objects as files under `root`; headers in a sidecar JSON under `root/.meta/`.
/// Writes go to a temporary file that is renamed into place, so readers (and the edge
/// serving the folder) never see a partial object.
pub struct LocalStore {
    root: PathBuf,
}

const META_DIR: &str = ".meta";
/// Parts of multipart writes, one folder per write (never listed: it starts with a dot).
const PARTS_DIR: &str = ".parts";

impl LocalStore {
    pub fn new(root: impl AsRef<Path>) -> Result<Self, StorageError> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(root.join(META_DIR))?;
        std::fs::create_dir_all(root.join(PARTS_DIR))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        if matches!(key.split('/').next(), Some(META_DIR | PARTS_DIR)) {
            return Err(StorageError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join(key))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    fn parts_dir(&self, upload: &str) -> Result<PathBuf, StorageError> {
        if upload.is_empty() || !upload.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(StorageError::NotFound(format!(
                "multipart write {upload:?}"
            )));
        }
        Ok(self.root.join(PARTS_DIR).join(upload))
    }
}

async fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("obj"),
        uuid::Uuid::new_v4().simple()
    ));
    tokio::fs::write(&tmp, data).await?;
    if let Err(e) = tokio::fs::rename(&tmp, path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    Ok(())
}

fn not_found(e: std::io::Error, key: &str) -> StorageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StorageError::NotFound(key.to_string())
    } else {
        StorageError::Io(e)
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let meta_json =
            serde_json::to_vec(meta).map_err(|e| StorageError::Backend(e.to_string()))?;
        // metadata first: an object is never visible without its headers
        write_atomic(&self.meta_path(key), &meta_json).await?;
        write_atomic(&path, &body).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| not_found(e, key))
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, StorageError> {
        let path = self.path(key)?;
        let md = tokio::fs::metadata(&path)
            .await
            .map_err(|e| not_found(e, key))?;
        if !md.is_file() {
            return Err(StorageError::NotFound(key.to_string()));
        }
        let meta = match tokio::fs::read(self.meta_path(key)).await {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| StorageError::Backend(e.to_string()))?
            }
            Err(_) => ObjectMeta::for_key(key, crate::CachePolicy::Short),
        };
        Ok(ObjectInfo {
            size: md.len(),
            meta,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        for p in [path, self.meta_path(key)] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::Io(e)),
                };
                for entry in rd {
                    let entry = entry?;
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.starts_with('.') {
                        continue; // metadata folder and in-flight temporary files
                    }
                    let ft = entry.file_type()?;
                    if ft.is_dir() {
                        stack.push(entry.path());
                    } else if ft.is_file() {
                        if let Ok(rel) = entry.path().strip_prefix(&root) {
                            let key = rel.to_string_lossy().replace('\\', "/");
                            if key.starts_with(&prefix) {
                                out.push(key);
                            }
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| StorageError::Backend(e.to_string()))?
    }

    fn backend(&self) -> &'static str {
        "local"
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(key)?;
        let mut f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| not_found(e, key))?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
        f.take(len).read_to_end(&mut out).await?;
        Ok(Bytes::from(out))
    }

    async fn multipart_start(&self, key: &str, meta: &ObjectMeta) -> Result<String, StorageError> {
        self.path(key)?;
        let upload = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.parts_dir(&upload)?;
        tokio::fs::create_dir_all(&dir).await?;
        let meta_json =
            serde_json::to_vec(meta).map_err(|e| StorageError::Backend(e.to_string()))?;
        write_atomic(&dir.join("meta.json"), &meta_json).await?;
        Ok(upload)
    }

    async fn multipart_put(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, StorageError> {
        self.path(key)?;
        let dir = self.parts_dir(upload)?;
        if !tokio::fs::try_exists(dir.join("meta.json")).await? {
            return Err(StorageError::NotFound(format!("multipart write {upload}")));
        }
        write_atomic(&dir.join(format!("{number:05}")), &body).await?;
        Ok(format!("{number}-{}", body.len()))
    }

    async fn multipart_complete(
        &self,
        key: &str,
        upload: &str,
        parts: &[Part],
    ) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        let path = self.path(key)?;
        let dir = self.parts_dir(upload)?;
        let meta = tokio::fs::read(dir.join("meta.json"))
            .await
            .map_err(|e| not_found(e, &format!("multipart write {upload}")))?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // parts are copied file to file (bounded memory), then renamed into place
        let tmp = dir.join("assembled");
        let mut out = tokio::fs::File::create(&tmp).await?;
        for p in parts {
            let mut part = tokio::fs::File::open(dir.join(format!("{:05}", p.number)))
                .await
                .map_err(|e| not_found(e, &format!("part {} of {upload}", p.number)))?;
            let copied = tokio::io::copy(&mut part, &mut out).await?;
            if copied != p.size {
                return Err(StorageError::Backend(format!(
                    "part {} holds {copied} bytes, not {}",
                    p.number, p.size
                )));
            }
        }
        out.flush().await?;
        out.sync_all().await?;
        drop(out);
        write_atomic(&self.meta_path(key), &meta).await?;
        tokio::fs::rename(&tmp, &path).await?;
        tokio::fs::remove_dir_all(&dir).await?;
        Ok(())
    }

    async fn multipart_abort(&self, key: &str, upload: &str) -> Result<(), StorageError> {
        self.path(key)?;
        let dir = self.parts_dir(upload)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        crate::contract::run(&store).await;
    }

    #[tokio::test]
    async fn metadata_folder_is_not_addressable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let meta = ObjectMeta::for_key("a.ts", crate::CachePolicy::Immutable);
        let err = store
            .put(".meta/x.json", Bytes::from_static(b"x"), &meta)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidKey(_)));
    }
}
