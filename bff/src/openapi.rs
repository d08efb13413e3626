//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/v1/openapi.json`. Answers every operation can give (400, 500, 502, 503, and 413/415
//! for operations with a body) are added here once rather than on each handler.

use utoipa::openapi::path::Operation;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::api::{auth, screens, studio, viewer, websession};
use crate::model;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Caudal API",
        version = "1",
        description = "The one API of Caudal's web and mobile apps. Everything is under /v1; fields are only added within a version. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}` with stable codes. Every answer carries `x-request-id`."
    ),
    paths(
        auth::signup, auth::login, auth::refresh, auth::logout, auth::me, auth::edit_me, auth::become_creator,
        websession::signup, websession::login, websession::refresh, websession::logout,
        screens::home, screens::search, screens::creator_page, screens::video_detail, screens::record_view, screens::playback,
        studio::videos, studio::studio_video, studio::edit_video, studio::delete_video, studio::broadcast_health, studio::broadcast_defaults,
        studio::set_broadcast_defaults, studio::stream_keys, studio::create_stream_key, studio::rotate_stream_key,
        studio::revoke_stream_key, studio::obs_settings, studio::plan, studio::set_plan, studio::subscribers,
        viewer::subscribe, viewer::cancel, viewer::my_subscriptions, viewer::purchase, viewer::my_purchases,
    ),
    components(schemas(model::ErrorEnvelope, model::ErrorBody)),
    modifiers(&Common),
    tags(
        (name = "auth", description = "Accounts and sessions"),
        (name = "screens", description = "Home, search, the watch screen"),
        (name = "studio", description = "The creator studio"),
        (name = "viewer", description = "Subscriptions and purchases"),
    )
)]
pub struct ApiDoc;

struct Common;

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .header(
            "x-request-id",
            HeaderBuilder::new()
                .description(Some("The request id"))
                .build(),
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build()
}

fn add_common(op: &mut Operation) {
    let has_body = op
        .request_body
        .as_ref()
        .is_some_and(|b: &RequestBody| !b.content.is_empty());
    let mut common = vec![
        (
            "400",
            "`invalid_field`: a parameter or body field is wrong (`field` names it)",
        ),
        ("500", "`internal`"),
        (
            "502",
            "`upstream_error`: a service answered something bff does not understand",
        ),
        (
            "503",
            "`unavailable`: a service this answer needs cannot be reached",
        ),
    ];
    if has_body {
        common.push(("413", "`payload_too_large`"));
        common.push((
            "415",
            "`unsupported_media_type`: send Content-Type: application/json",
        ));
    }
    for (status, description) in common {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description).into());
    }
}

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The access_token of a session (POST /v1/auth/login)"))
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                add_common(op);
            }
        }
    }
}

/// The document as JSON bytes (rendered once at start-up).
pub fn document_json() -> bytes::Bytes {
    bytes::Bytes::from(
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serialises"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_its_errors() {
        let doc: serde_json::Value = serde_json::from_slice(&document_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 20, "{} paths", paths.len());
        for (path, item) in paths {
            assert!(path.starts_with("/v1/"), "{path}");
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for code in ["400", "500", "503"] {
                    assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                }
                assert!(
                    responses.keys().any(|c| c.starts_with('2')),
                    "{method} {path} has no success answer"
                );
            }
        }
        assert_eq!(
            doc["paths"]["/v1/videos/{id}/playback"]["get"]["deprecated"],
            true
        );
    }
}
