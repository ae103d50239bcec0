//! template.yaml, the functions and openapi.yaml agree: every route the template gives a
//! function is served by that function (and by no other), and openapi.yaml documents exactly
//! those routes.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Request, Service};
use serde_norway::Value;

fn load(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// (function binary, METHOD, path) for every HttpApi event in template.yaml.
fn template_routes() -> Vec<(String, String, String)> {
    let template = load("template.yaml");
    let mut routes = Vec::new();
    let resources = template["Resources"].as_mapping().expect("Resources");
    for (_, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda")
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("Binary")
            .to_owned();
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let props = &event["Properties"];
            routes.push((
                binary.clone(),
                props["Method"].as_str().unwrap().to_ascii_uppercase(),
                props["Path"].as_str().unwrap().to_owned(),
            ));
        }
    }
    routes
}

#[test]
fn openapi_documents_exactly_the_templates_routes() {
    let template: BTreeSet<(String, String)> = template_routes()
        .into_iter()
        .map(|(_, m, p)| (m, p))
        .collect();
    let openapi = load("openapi.yaml");
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_mapping().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if !item[method].is_null() {
                documented.insert((
                    method.to_ascii_uppercase(),
                    path.as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    assert_eq!(template, documented);
    assert_eq!(template.len(), 7, "the spec's seven routes");
}

#[test]
fn backend_routes_require_iam() {
    let template = load("template.yaml");
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events {
            let path = event["Properties"]["Path"].as_str().unwrap_or("");
            let iam = event["Properties"]["Auth"]["Authorizer"].as_str() == Some("AWS_IAM");
            let backend = path == "/publish"
                || path.starts_with("/presence")
                || path.starts_with("/sessions");
            if event["Type"].as_str() == Some("HttpApi") {
                assert_eq!(iam, backend, "{path}");
            }
        }
    }
}

#[tokio::test]
async fn every_template_route_is_served_by_its_function_only() {
    let service = Service::start(&[]);
    let routes = template_routes();
    for (function, method, path) in &routes {
        let concrete = path.replace("{client}", "wp").replace("{account_id}", "1");
        let method: &'static str = match method.as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "DELETE" => "DELETE",
            other => panic!("unexpected method {other}"),
        };
        for other in ["login", "publish", "fetch", "heartbeat"] {
            let reply = service.call(other, &Request::new(method, &concrete)).await;
            reply.check_envelope();
            if other == function {
                assert!(
                    reply.status != 404 && reply.status != 405,
                    "{function} does not serve {method} {path}: {reply:?}"
                );
            } else {
                assert!(
                    reply.status == 404 || reply.status == 405,
                    "{other} answers {method} {path}: {reply:?}"
                );
            }
        }
    }
}
