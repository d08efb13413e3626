//! The behaviour every [`ObjectStore`] must have. Each backend's tests call [`run`].

use bytes::Bytes;

use crate::{CachePolicy, ObjectMeta, ObjectStore, StorageError};

/// Exercises put/get/head/list/delete, overwrite, missing keys, bad keys, binary data and
/// concurrent writers. Panics with a message naming the broken rule.
pub async fn run(store: &dyn ObjectStore) {
    let ns = format!("t{}", uuid::Uuid::new_v4().simple());
    let seg_key = format!("{ns}/live/720p/seg_00001.ts");
    let seg_meta = ObjectMeta::for_key(&seg_key, CachePolicy::Immutable);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    // missing objects
    let missing = format!("{ns}/missing.ts");
    assert!(
        matches!(store.get(&missing).await, Err(StorageError::NotFound(_))),
        "get of a missing key must be NotFound"
    );
    assert!(
        matches!(store.head(&missing).await, Err(StorageError::NotFound(_))),
        "head of a missing key must be NotFound"
    );

    // put / get / head round trip, binary-safe, with headers
    store
        .put(&seg_key, Bytes::from(body.clone()), &seg_meta)
        .await
        .expect("put");
    let got = store.get(&seg_key).await.expect("get");
    assert_eq!(
        got.as_ref(),
        body.as_slice(),
        "get returns exactly what was put"
    );
    let info = store.head(&seg_key).await.expect("head");
    assert_eq!(info.size, body.len() as u64);
    assert_eq!(
        info.meta, seg_meta,
        "content type and cache control are kept"
    );

    // overwrite replaces whole object and its headers
    let pl_key = format!("{ns}/live/720p/index.m3u8");
    let live = ObjectMeta::for_key(&pl_key, CachePolicy::Live);
    store
        .put(
            &pl_key,
            Bytes::from_static(b"#EXTM3U\nfirst-version-longer"),
            &live,
        )
        .await
        .unwrap();
    store
        .put(&pl_key, Bytes::from_static(b"#EXTM3U\n"), &live)
        .await
        .unwrap();
    assert_eq!(store.get(&pl_key).await.unwrap().as_ref(), b"#EXTM3U\n");
    let vod = ObjectMeta::for_key(&pl_key, CachePolicy::Short);
    store
        .put(
            &pl_key,
            Bytes::from_static(b"#EXTM3U\n#EXT-X-ENDLIST\n"),
            &vod,
        )
        .await
        .unwrap();
    assert_eq!(store.head(&pl_key).await.unwrap().meta, vod);

    // empty objects are fine
    let empty = format!("{ns}/empty.bin");
    store
        .put(
            &empty,
            Bytes::new(),
            &ObjectMeta::for_key(&empty, CachePolicy::Short),
        )
        .await
        .unwrap();
    assert_eq!(store.get(&empty).await.unwrap().len(), 0);

    // list by prefix, sorted, nothing outside the prefix
    let listed = store.list(&format!("{ns}/live/")).await.unwrap();
    assert_eq!(listed, vec![pl_key.clone(), seg_key.clone()]);
    assert!(store
        .list(&format!("{ns}/nothing/"))
        .await
        .unwrap()
        .is_empty());

    // bad keys are refused before touching the backend
    for bad in ["", "/etc/passwd", "a/../../b"] {
        assert!(
            matches!(
                store.put(bad, Bytes::from_static(b"x"), &seg_meta).await,
                Err(StorageError::InvalidKey(_))
            ),
            "{bad:?} must be refused"
        );
    }

    // concurrent writers to distinct keys all land
    let mut tasks = Vec::new();
    for i in 0..16 {
        let key = format!("{ns}/many/seg_{i:05}.ts");
        let meta = ObjectMeta::for_key(&key, CachePolicy::Immutable);
        tasks.push(async move {
            store
                .put(&key, Bytes::from(vec![i as u8; 1000 + i]), &meta)
                .await
        });
    }
    for r in futures::future::join_all(tasks).await {
        r.expect("concurrent put");
    }
    let many = store.list(&format!("{ns}/many/")).await.unwrap();
    assert_eq!(many.len(), 16);
    for (i, key) in many.iter().enumerate() {
        assert_eq!(store.get(key).await.unwrap().len(), 1000 + i);
    }

    // delete, idempotent
    store.delete(&seg_key).await.unwrap();
    store.delete(&seg_key).await.unwrap();
    assert!(matches!(
        store.get(&seg_key).await,
        Err(StorageError::NotFound(_))
    ));
    for key in store.list(&format!("{ns}/")).await.unwrap() {
        store.delete(&key).await.unwrap();
    }
    assert!(store.list(&format!("{ns}/")).await.unwrap().is_empty());
}
