//! Finding links in a page (scraper, an HTML5 parser) and normalising them (the `url` crate).

use std::sync::LazyLock;

use scraper::{Html, Selector};
use url::Url;

static LINKS: LazyLock<Selector> = LazyLock::new(|| {
    Selector::parse("a[href], area[href], iframe[src], frame[src]").expect("a valid selector")
});
static BASE: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("base[href]").expect("a valid selector"));
static META_ROBOTS: LazyLock<Selector> = LazyLock::new(|| {
    Selector::parse(r#"meta[name="robots" i][content]"#).expect("a valid selector")
});

/// The canonical form of a URL the crawler keys on: no fragment, no empty query. The `url` crate has already
/// lower-cased the scheme and host, dropped a default port, resolved `.` and `..` and percent-encoded the rest.
pub fn normalise(mut url: Url) -> Url {
    url.set_fragment(None);
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

/// Resolves `href` against `base` and normalises it; `None` for anything that is not an http(s) URL
/// (`mailto:`, `javascript:`, `ftp:`, unparsable links, ...).
pub fn resolve(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() {
        return None;
    }
    let url = base.join(href).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    Some(normalise(url))
}

/// What a page links to, in document order, duplicates removed (first occurrence kept).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageLinks {
    pub links: Vec<Url>,
    /// `<meta name="robots" content="nofollow">`: the page asks crawlers not to follow its links.
    pub nofollow: bool,
}

/// Parses an HTML document and returns its http(s) links resolved against `page_url` (or its `<base href>`).
pub fn extract(page_url: &Url, html: &str) -> PageLinks {
    let document = Html::parse_document(html);
    let base = document
        .select(&BASE)
        .next()
        .and_then(|base| base.value().attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone());
    let nofollow = document.select(&META_ROBOTS).any(|meta| {
        meta.value().attr("content").is_some_and(|content| {
            content
                .split(',')
                .any(|d| matches!(d.trim().to_ascii_lowercase().as_str(), "nofollow" | "none"))
        })
    });
    let mut seen = std::collections::HashSet::new();
    let links = document
        .select(&LINKS)
        .filter(|element| {
            // `<a download>` points at a file to save, not at a page to crawl.
            element.value().attr("download").is_none()
        })
        .filter_map(|element| {
            let value = element.value();
            value.attr("href").or_else(|| value.attr("src"))
        })
        .filter_map(|href| resolve(&base, href))
        .filter(|url| seen.insert(url.as_str().to_owned()))
        .collect();
    PageLinks { links, nofollow }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn resolves_and_normalises() {
        let base = url("http://Example.COM:80/dir/page.html?x=1#top");
        let html = r##"<html><body>
            <a href="other.html">relative</a>
            <a href="/abs#frag">absolute path</a>
            <a href="../up/./x.html">dots</a>
            <a href="HTTP://EXAMPLE.com/abs">same as /abs</a>
            <a href="#only-fragment">the page itself</a>
            <a href="?">empty query</a>
            <a href="mailto:someone@example.com">mail</a>
            <a href="javascript:void(0)">js</a>
            <a href="ftp://example.com/file">ftp</a>
            <a href="https://other.example/">other host</a>
            <a href="  spaced.html  ">spaces</a>
            <a>no href</a>
            <area href="map.html">
            <iframe src="frame.html"></iframe>
        </body></html>"##;
        let found: Vec<String> = extract(&base, html)
            .links
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            found,
            [
                "http://example.com/dir/other.html",
                "http://example.com/abs",
                "http://example.com/up/x.html",
                "http://example.com/dir/page.html?x=1",
                "http://example.com/dir/page.html",
                "https://other.example/",
                "http://example.com/dir/spaced.html",
                "http://example.com/dir/map.html",
                "http://example.com/dir/frame.html",
            ]
        );
    }

    #[test]
    fn base_href_and_meta_nofollow() {
        let page = url("http://example.com/a/b.html");
        let html = r#"<head><base href="/base/"><meta name="ROBOTS" content="noindex, nofollow"></head>
                      <a href="x.html">x</a>"#;
        let links = extract(&page, html);
        assert!(links.nofollow);
        assert_eq!(links.links, [url("http://example.com/base/x.html")]);
        assert!(!extract(&page, "<a href=x>").nofollow);
    }

    #[test]
    fn broken_html_still_yields_links() {
        let page = url("http://example.com/");
        let links = extract(
            &page,
            "<p><a href='/one'>one<a href=/two>two</p></div><a href=\"/three\"",
        );
        assert_eq!(
            links.links[..2],
            [url("http://example.com/one"), url("http://example.com/two")]
        );
    }
}
