//! The web UI: one HTML page at `/` and its script and style sheet, all embedded in the binary.
//! The page is a small client of the same JSON API (`/api/v1`), signed in through the
//! `surge_session` HttpOnly cookie; it renders every piece of user text with `textContent`,
//! never as HTML.
//!
//! Assets are served under names carrying a hash of their content, cached for a year as
//! immutable (a new build changes the name); the page itself is revalidated on every visit.
//! Compression comes from the router's layer (gzip or br, as the browser accepts). The page
//! and its assets carry a Content-Security-Policy that allows scripts and styles from this
//! origin only (no inline script, no `eval`), images from this origin, and connections to it.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy for the page: nothing but this origin, no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded file, served under a name with its content hash.
struct Asset {
    /// `/assets/app.3f2a….js`
    path: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Self {
        let path = format!("/assets/{stem}.{:016x}.{extension}", fnv1a(body.as_bytes()));
        Self { path, content_type, body }
    }
}

/// FNV-1a, 64 bits: a stable content hash for cache busting (not a security property).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The script: the shell (API calls, session, routing, helpers) then one file per app.
const SCRIPT: &str = concat!(
    include_str!("../web/core.js"),
    include_str!("../web/auctions.js"),
    include_str!("../web/cinema.js"),
    include_str!("../web/deals.js"),
    include_str!("../web/ratings.js"),
    include_str!("../web/social.js"),
    include_str!("../web/start.js"),
);

static SCRIPT_ASSET: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("app", "js", "text/javascript; charset=utf-8", SCRIPT));
static STYLE_ASSET: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new("style", "css", "text/css; charset=utf-8", include_str!("../web/style.css"))
});

/// The page, with the current asset names filled in.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("../web/index.html")
        .replace("{{script}}", &SCRIPT_ASSET.path)
        .replace("{{style}}", &STYLE_ASSET.path)
});

/// The UI routes, for any state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(page)).route("/assets/{name}", get(asset))
}

fn with_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The single page of the UI.
async fn page() -> Response {
    with_policy(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            PAGE.as_str(),
        )
            .into_response(),
    )
}

/// A hashed asset; any other name is 404.
async fn asset(Path(name): Path<String>) -> Response {
    let wanted = format!("/assets/{name}");
    let Some(asset) = [&*SCRIPT_ASSET, &*STYLE_ASSET].into_iter().find(|a| a.path == wanted) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    with_policy(
        (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_hashed_assets_and_no_inline_script() {
        assert!(PAGE.contains(&SCRIPT_ASSET.path));
        assert!(PAGE.contains(&STYLE_ASSET.path));
        assert!(!PAGE.contains("{{"), "every placeholder filled");
        // Every script is an external file: the policy has no 'unsafe-inline'.
        assert_eq!(PAGE.matches("<script").count(), PAGE.matches("<script src=").count());
        assert!(!PAGE.contains("style="), "no inline styles either");
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }

    #[test]
    fn the_script_never_writes_html_from_strings() {
        for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]
        {
            assert!(!SCRIPT.contains(forbidden), "the UI script uses {forbidden}");
        }
    }

    #[test]
    fn a_changed_file_gets_a_new_name() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
