//! The demo page and the JS client, built into the binary so `serve` works from any directory.

/// A static file.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("../web/index.html"),
};
const DEMO_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../web/demo.js"),
};
const DEMO_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("../web/demo.css"),
};
/// The JS client from `clients/js/`, the same file Node imports.
const CLIENT_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../clients/js/bcast.js"),
};

/// The file served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    match path {
        "/" | "/index.html" => Some(&INDEX),
        "/demo.js" => Some(&DEMO_JS),
        "/demo.css" => Some(&DEMO_CSS),
        "/bcast.js" => Some(&CLIENT_JS),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_scripts_are_served() {
        let index = asset("/").map(|a| a.body).unwrap_or("");
        assert!(index.contains("demo.js"));
        assert!(asset("/bcast.js").is_some_and(|a| a.body.contains("export class BcastClient")));
        assert!(asset("/demo.js").is_some_and(|a| a.content_type.starts_with("text/javascript")));
        assert!(asset("/demo.css").is_some());
        assert!(asset("/login").is_none());
        assert!(asset("/../Cargo.toml").is_none());
    }
}
