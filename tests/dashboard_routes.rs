//! `/dashboard` over plain HTTP: the page and its assets come from the
//! binary, under the same prefix as the other routes, with a strict
//! Content-Security-Policy; a token protects them like `/health`, and a
//! browser signs in once with `?token=`, which leaves a cookie behind.

mod support;

use axum::Router;
use reqwest::{StatusCode, Url, redirect};
use serverwatch::ServerWatch;
use support::{TestApp, sample_routes, serve_sample};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every `href="…"` and `src="…"` of `html`.
fn linked_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for part in html.split(attribute).skip(1) {
            urls.push(part.split('"').next().unwrap().to_owned());
        }
    }
    urls
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name} header", response.url()))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_come_from_the_binary_with_a_strict_policy() {
    let watch = ServerWatch::builder()
        .service_name("<inventory> & \"co\"")
        .path_prefix("/ops")
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    assert_eq!(app.status("/dashboard").await, 404, "only under the prefix");

    let page = app.get("/ops/dashboard").await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-store");
    assert_eq!(header(&page, "content-security-policy"), CSP);
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let html = page.text().await.unwrap();

    // Nothing inline, nothing from elsewhere, and the service name as text.
    assert!(
        html.contains("&lt;inventory&gt; &amp; &quot;co&quot;"),
        "the service name is escaped"
    );
    assert!(!html.contains("<inventory>"));
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(tag.contains(" src=\""), "an inline script: <script{tag}>");
        assert!(
            script.split('>').nth(1).unwrap().starts_with("</script"),
            "a script with a body"
        );
    }
    assert!(!html.contains("<style"), "an inline style sheet");
    assert!(!html.contains(" style="), "a style attribute");
    assert!(
        !html
            .split(|c: char| c.is_whitespace())
            .any(|word| word.starts_with("on") && word.contains('=')),
        "an event-handler attribute"
    );

    // Every URL is relative, so it resolves under the prefix.
    let page_url = Url::parse(&app.url("/ops/dashboard")).unwrap();
    let urls = linked_urls(&html);
    assert!(urls.len() >= 6, "{urls:?}");
    for link in &urls {
        assert!(
            !link.starts_with('/') && !link.contains("//") && !link.contains(':'),
            "not a relative URL: {link}"
        );
        let url = page_url.join(link).unwrap();
        assert!(url.path().starts_with("/ops/"), "{link} → {url}");
        let response = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let content_type = header(&response, "content-type");
        let expected = match url.path().rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            "txt" => "text/plain; charset=utf-8",
            _ => "application/json",
        };
        assert_eq!(content_type, expected, "{url}");
        if url.path().starts_with("/ops/dashboard/assets/") {
            assert_eq!(header(&response, "content-security-policy"), CSP, "{url}");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff");
            assert!(
                header(&response, "cache-control").contains("max-age="),
                "{url}: assets can be cached"
            );
            assert!(url.query().is_some_and(|q| q.starts_with("v=")), "{url}");
        } else {
            assert_eq!(header(&response, "cache-control"), "no-store", "{url}");
        }
    }
    assert_eq!(
        app.status("/ops/dashboard/assets/no-such-file.js").await,
        404
    );

    let history: serde_json::Value = app
        .get("/ops/dashboard/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["interval_seconds"], 5);
    assert!(history["samples"].is_array());
}

#[tokio::test]
async fn a_token_protects_the_dashboard_and_signs_a_browser_in_with_a_cookie() {
    // Characters a cookie cannot hold as they are, and a `+`.
    let token = "s3cret;%+=,\"x";
    let watch = ServerWatch::builder()
        .path_prefix("/ops")
        .bearer_token(token)
        .build()
        .unwrap();
    let app = serve_sample(&watch).await;
    let client = no_redirects();
    let get = |path: &str| client.get(app.url(path));

    let protected = [
        "/ops/dashboard",
        "/ops/dashboard/history",
        "/ops/dashboard/assets/dashboard.js",
        "/ops/health",
        "/ops/metrics",
    ];
    for path in protected {
        let response = get(path).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path} without the token");
        assert_eq!(header(&response, "www-authenticate"), "Bearer");
    }
    let hint = get("/ops/dashboard")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        hint.contains("dashboard?token="),
        "the page says how to sign in: {hint}"
    );

    for wrong in ["wrong", "s3cret", "", "s3cret%3B%25%2B%3D%2C%22"] {
        let response = get(&format!("/ops/dashboard?token={wrong}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "?token={wrong}");
        assert!(response.headers().get("set-cookie").is_none());
    }

    let encoded = "s3cret%3B%25+%3D%2C%22x";
    let sign_in = get(&format!("/ops/dashboard?token={encoded}&theme=dark"))
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&sign_in, "cache-control"), "no-store");
    let location = header(&sign_in, "location");
    let back = Url::parse(&app.url(&format!("/ops/dashboard?token={encoded}")))
        .unwrap()
        .join(location)
        .unwrap();
    assert_eq!(
        back.as_str(),
        app.url("/ops/dashboard"),
        "to the page, without the token"
    );
    let set_cookie = header(&sign_in, "set-cookie");
    let mut attributes = set_cookie.split("; ");
    let pair = attributes.next().unwrap();
    let attributes: Vec<&str> = attributes.collect();
    assert!(
        pair.starts_with("serverwatch_token=") && !pair.contains([';', ',', '"', ' ']),
        "{set_cookie}"
    );
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/ops/"] {
        assert!(attributes.contains(&wanted), "{wanted} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");

    for path in protected {
        let response = get(path).header("cookie", pair).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} with the cookie");
        let with_others = get(path)
            .header("cookie", format!("theme=dark; {pair}; lang=en"))
            .send()
            .await
            .unwrap();
        assert_eq!(with_others.status(), 200, "{path} among other cookies");
    }
    for wrong in ["serverwatch_token=s3cret", "serverwatch_token=", "other=1"] {
        let response = get("/ops/health")
            .header("cookie", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "cookie {wrong}");
    }
    let bearer = get("/ops/dashboard")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200, "the bearer token still works");
}

/// The `Path` of the cookie set by signing in at `page`.
async fn cookie_path(app: &TestApp, page: &str, token: &str) -> String {
    let response = no_redirects()
        .get(app.url(&format!("{page}?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "{page}");
    let cookie = header(&response, "set-cookie");
    cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Path="))
        .unwrap_or_else(|| panic!("no Path in {cookie}"))
        .to_owned()
}

#[tokio::test]
async fn the_cookie_covers_exactly_where_the_routes_are_mounted() {
    let token = "t0ken";
    let watch = ServerWatch::builder().bearer_token(token).build().unwrap();
    let root = serve_sample(&watch).await;
    assert_eq!(cookie_path(&root, "/dashboard", token).await, "/");

    let alone = TestApp::serve(watch.router()).await;
    assert_eq!(cookie_path(&alone, "/dashboard", token).await, "/");

    let nested = TestApp::serve(Router::new().nest("/admin/ops", watch.router())).await;
    assert_eq!(
        cookie_path(&nested, "/admin/ops/dashboard", token).await,
        "/admin/ops/"
    );
}

#[tokio::test]
async fn without_a_token_the_dashboard_is_open_and_ignores_one() {
    let watch = ServerWatch::builder().build().unwrap();
    let app = TestApp::serve(watch.instrument(sample_routes())).await;
    let response = no_redirects()
        .get(app.url("/dashboard?token=anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
}
