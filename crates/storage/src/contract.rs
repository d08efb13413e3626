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

    // multipart: invisible until complete, parts replaceable, the object is the parts in order
    let big_key = format!("{ns}/uploads/source");
    let big_meta = ObjectMeta {
        content_type: "video/mp4".into(),
        cache_control: "private, no-store".into(),
    };
    let upload = store.multipart_start(&big_key, &big_meta).await.unwrap();
    let part1: Vec<u8> = (0..crate::MIN_PART_BYTES)
        .map(|i| (i % 251) as u8)
        .collect();
    let first_try = store
        .multipart_put(
            &big_key,
            &upload,
            1,
            Bytes::from(vec![0u8; crate::MIN_PART_BYTES]),
        )
        .await
        .unwrap();
    let tag1 = store
        .multipart_put(&big_key, &upload, 1, Bytes::from(part1.clone()))
        .await
        .unwrap();
    assert!(!first_try.is_empty() && !tag1.is_empty());
    let tag2 = store
        .multipart_put(&big_key, &upload, 2, Bytes::from_static(b"the tail"))
        .await
        .unwrap();
    assert!(matches!(
        store.head(&big_key).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(store
        .list(&format!("{ns}/uploads/"))
        .await
        .unwrap()
        .is_empty());
    let parts = [
        crate::Part {
            number: 1,
            tag: tag1,
            size: part1.len() as u64,
        },
        crate::Part {
            number: 2,
            tag: tag2,
            size: 8,
        },
    ];
    store
        .multipart_complete(&big_key, &upload, &parts)
        .await
        .unwrap();
    let info = store.head(&big_key).await.unwrap();
    assert_eq!(info.size, part1.len() as u64 + 8);
    assert_eq!(info.meta, big_meta);
    let whole = store.get(&big_key).await.unwrap();
    assert_eq!(&whole[..part1.len()], &part1[..]);
    assert_eq!(&whole[part1.len()..], b"the tail");
    // ranges, including one past the end
    let r = store.get_range(&big_key, 1000, 10).await.unwrap();
    assert_eq!(&r[..], &part1[1000..1010]);
    let r = store
        .get_range(&big_key, part1.len() as u64 + 4, 100)
        .await
        .unwrap();
    assert_eq!(&r[..], b"tail");
    assert!(store
        .get_range(&big_key, info.size + 10, 5)
        .await
        .unwrap()
        .is_empty());
    // an aborted write leaves nothing (aborting it again may fail: s3s-fs answers
    // AccessDenied for a write it no longer knows, AWS NoSuchUpload)
    let gone = format!("{ns}/uploads/aborted");
    let upload = store.multipart_start(&gone, &big_meta).await.unwrap();
    store
        .multipart_put(&gone, &upload, 1, Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.multipart_abort(&gone, &upload).await.unwrap();
    assert!(store
        .multipart_put(&gone, &upload, 2, Bytes::from_static(b"y"))
        .await
        .is_err());
    assert!(matches!(
        store.head(&gone).await,
        Err(StorageError::NotFound(_))
    ));

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
