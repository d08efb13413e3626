//! The [`VideoRepo`] contract suite against the MongoDB-compatible server at `CAUDAL_MONGO_URL`.

mod common;

use metadata_svc::{MongoRepo, VideoRepo};

#[tokio::test]
async fn mongo_repo_meets_the_contract() {
    let db = common::TestDb::new();
    let repo = MongoRepo::connect(&db.config())
        .await
        .expect("connect and create indexes");
    // index creation is idempotent: start-up runs it every time
    repo.ensure_indexes().await.expect("indexes again");
    let names: Vec<String> = repo
        .database()
        .collection::<mongodb::bson::Document>("videos")
        .list_index_names()
        .await
        .unwrap();
    for name in [
        "list",
        "owner_list",
        "status_kind_list",
        "visibility_list",
        "tags_list",
        "keywords",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "index {name} exists: {names:?}"
        );
    }
    let repo: &dyn VideoRepo = &repo;
    metadata_svc::contract::run(repo).await;
}
