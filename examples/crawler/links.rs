//! Finding links in a page as its body streams in (lol_html: a tokenizer with selectors, no DOM is built) and
//! normalising them (the `url` crate).
//!
//! A `LinkExtractor` takes the body chunk by chunk as the fetch reads it, so the body is never held whole: what
//! stays is the link values found so far. It reads the links an HTML5 parser would give for `a[href]`,
//! `area[href]`, `iframe[src]` and `frame[src]` (without `download`), `<base href>` and `<meta name=robots>`, with
//! the tokenizer's rules for comments, scripts, styles, `<textarea>`, `<title>` and the other raw-text elements,
//! attribute values decoded in the page's charset and then their character references (WHATWG rules for
//! attributes). The charset is the one a whole-body decode would use: a byte-order mark, else the Content-Type's
//! charset, else UTF-8 if the body is valid UTF-8 and windows-1252 if not. For the last case, values are kept as
//! windows-1252 text (which maps every byte to one character, so nothing is lost) and converted once the end of the
//! body shows whether it was UTF-8. Charsets a tokenizer of bytes cannot read (UTF-16, ISO-2022-JP) are decoded
//! whole first.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use encoding_rs::{DecoderResult, Encoding, UTF_8, WINDOWS_1252};
use lol_html::html_content::Element;
use lol_html::{AsciiCompatibleEncoding, HtmlRewriter, OutputSink, Settings, element};
use url::Url;

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

/// Extracts the links of a whole body at once (see [`LinkExtractor`]); also returns what is wrong with the body's
/// encoding, if anything.
pub fn extract(
    page_url: &Url,
    content_type: Option<&str>,
    body: &[u8],
) -> (PageLinks, Option<String>) {
    let mut extractor = LinkExtractor::new(page_url, content_type);
    extractor.write(body);
    extractor.finish()
}

/// Link values as the tokenizer found them: decoded in the rewriter's charset, character references not yet
/// expanded.
#[derive(Default)]
struct Found {
    base: Option<String>,
    /// In document order.
    links: Vec<String>,
    /// The `content` of each `<meta name=robots>`.
    robots: Vec<String>,
    /// A `<frameset>` came before any other link: the document is a frameset document, whose `<frame>`s count
    /// (in a body, an HTML5 parser drops `<frame>`, and in a frameset document everything but frames).
    frameset: bool,
    /// Some a/area/iframe link came first: a later `<frameset>` is ignored, as an HTML5 parser ignores it once
    /// the body has started.
    body_started: bool,
}

/// lol_html rewrites as it parses; the extractor does not need the output.
struct Discard;

impl OutputSink for Discard {
    fn handle_chunk(&mut self, _: &[u8]) {}
}

/// How the body's bytes are read.
enum Reading {
    /// The first bytes, until there are enough to look for a byte-order mark.
    Undecided { pending: Vec<u8> },
    /// Streaming through the tokenizer.
    Streaming {
        rewriter: Box<HtmlRewriter<'static, Discard>>,
        /// Checks the body is valid in `expected` (the encoding a whole-body decode would have used).
        check: Option<Check>,
        /// No charset was declared: values are windows-1252 text, to convert to UTF-8 if the body was UTF-8.
        undeclared: bool,
        /// What to say about the encoding whatever the check finds (an unknown charset).
        note: Option<String>,
    },
    /// A charset the tokenizer cannot read: the body is kept and decoded whole at the end.
    Whole { body: Vec<u8> },
}

/// Whether a body is valid in an encoding, checked chunk by chunk.
struct Check {
    decoder: encoding_rs::Decoder,
    scratch: Vec<u8>,
    malformed: bool,
    /// The message when it is not.
    message: String,
}

impl Check {
    fn new(encoding: &'static Encoding, message: String) -> Check {
        Check {
            decoder: encoding.new_decoder_without_bom_handling(),
            scratch: vec![0; 16 * 1024],
            malformed: false,
            message,
        }
    }

    fn feed(&mut self, mut chunk: &[u8], last: bool) {
        while !self.malformed {
            let (result, read, _) =
                self.decoder
                    .decode_to_utf8_without_replacement(chunk, &mut self.scratch, last);
            chunk = &chunk[read..];
            match result {
                DecoderResult::InputEmpty => return,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => self.malformed = true,
            }
        }
    }
}

/// Extracts a page's links from its body, fed chunk by chunk.
pub struct LinkExtractor {
    page_url: Url,
    declared: Declared,
    found: Rc<RefCell<Found>>,
    reading: Reading,
}

/// The charset the Content-Type declares.
#[derive(Clone)]
enum Declared {
    None,
    Known(&'static Encoding),
    Unknown(String),
}

impl LinkExtractor {
    pub fn new(page_url: &Url, content_type: Option<&str>) -> LinkExtractor {
        let label = content_type
            .and_then(|ct| ct.parse::<mime::Mime>().ok())
            .and_then(|m| m.get_param(mime::CHARSET).map(|c| c.as_str().to_owned()));
        let declared = match label {
            None => Declared::None,
            Some(label) => match Encoding::for_label(label.as_bytes()) {
                Some(encoding) => Declared::Known(encoding),
                None => Declared::Unknown(label),
            },
        };
        LinkExtractor {
            page_url: page_url.clone(),
            declared,
            found: Rc::default(),
            reading: Reading::Undecided {
                pending: Vec::new(),
            },
        }
    }

    /// Feeds the next chunk of the body.
    pub fn write(&mut self, chunk: &[u8]) {
        match &mut self.reading {
            Reading::Undecided { pending } => {
                pending.extend_from_slice(chunk);
                if pending.len() >= 3 {
                    let pending = std::mem::take(pending);
                    self.decide(&pending);
                }
            }
            Reading::Streaming {
                rewriter, check, ..
            } => {
                if let Some(check) = check {
                    check.feed(chunk, false);
                }
                // Not strict (strict bails out on rare ambiguous markup), so writing never fails.
                let _ = rewriter.write(chunk);
            }
            Reading::Whole { body } => body.extend_from_slice(chunk),
        }
    }

    /// Chooses how to read the body from its first bytes (a byte-order mark wins over the Content-Type, as in
    /// `Encoding::decode`), then reads them.
    fn decide(&mut self, first: &[u8]) {
        let (bom, rest) = match Encoding::for_bom(first) {
            Some((encoding, length)) => (Some(encoding), &first[length..]),
            None => (None, first),
        };
        let declared = self.declared.clone();
        // As a whole-body decode: the byte-order mark's encoding (lossy, no fallback), else the declared one, else
        // UTF-8 with windows-1252 as the fallback if the body is not UTF-8.
        let (encoding, undeclared) = match (bom, &declared) {
            (Some(bom), _) => (bom, false),
            (None, Declared::Known(encoding)) => (*encoding, false),
            (None, Declared::Unknown(_)) => (UTF_8, false),
            (None, Declared::None) => (UTF_8, true),
        };
        let note = match &declared {
            Declared::Unknown(label) => Some(format!("unknown charset {label:?}")),
            _ => None,
        };
        let Some(readable) = AsciiCompatibleEncoding::new(encoding) else {
            self.reading = Reading::Whole {
                body: first.to_vec(),
            };
            return;
        };
        let check = match &declared {
            // Said when the body is not valid in the encoding used.
            Declared::Known(declared) => Some(Check::new(
                encoding,
                format!(
                    "invalid {} in a page declared as {}",
                    encoding.name(),
                    declared.name()
                ),
            )),
            // Decides between UTF-8 and windows-1252 (nothing is said either way).
            Declared::None if undeclared => Some(Check::new(UTF_8, String::new())),
            _ => None,
        };
        let tokenizer_encoding = if undeclared {
            AsciiCompatibleEncoding::new(WINDOWS_1252).expect("windows-1252 is ASCII-compatible")
        } else {
            readable
        };
        self.reading = Reading::Streaming {
            rewriter: Box::new(rewriter(&self.found, tokenizer_encoding)),
            check,
            undeclared,
            note,
        };
        self.write(rest);
    }

    /// The links found, resolved and normalised, and what is wrong with the body's encoding, if anything.
    pub fn finish(mut self) -> (PageLinks, Option<String>) {
        if let Reading::Undecided { pending } = &mut self.reading {
            let pending = std::mem::take(pending);
            self.decide(&pending);
        }
        let (convert, error): (fn(String) -> String, Option<String>) =
            match std::mem::replace(&mut self.reading, Reading::Whole { body: Vec::new() }) {
                Reading::Undecided { .. } => unreachable!("decided above"),
                Reading::Streaming {
                    rewriter,
                    check,
                    undeclared,
                    note,
                } => {
                    let _ = rewriter.end();
                    let malformed = check.map(|mut check| {
                        check.feed(&[], true);
                        (check.malformed, check.message)
                    });
                    match (undeclared, malformed) {
                        // Undeclared and valid UTF-8: the windows-1252 text was UTF-8 all along.
                        (true, Some((false, _))) => (windows_1252_to_utf_8, None),
                        (true, _) => (identity, None),
                        (false, Some((true, message))) => (identity, Some(message)),
                        (false, _) => (identity, note),
                    }
                }
                Reading::Whole { body } => {
                    let (text, error) = decode(&self.declared, &body);
                    let mut rewriter = rewriter(&self.found, AsciiCompatibleEncoding::utf_8());
                    let _ = rewriter.write(text.as_bytes());
                    let _ = rewriter.end();
                    (identity, error)
                }
            };
        let found = std::mem::take(&mut *self.found.borrow_mut());
        let value = |raw: String| htmlize::unescape_attribute(convert(raw)).into_owned();
        let base = found
            .base
            .map(value)
            .and_then(|href| self.page_url.join(href.trim()).ok())
            .unwrap_or_else(|| self.page_url.clone());
        let nofollow = found.robots.into_iter().map(value).any(|content| {
            content
                .split(',')
                .any(|d| matches!(d.trim().to_ascii_lowercase().as_str(), "nofollow" | "none"))
        });
        let mut seen = HashSet::new();
        let links = found
            .links
            .into_iter()
            .filter_map(|raw| resolve(&base, &value(raw)))
            .filter(|url| seen.insert(url.as_str().to_owned()))
            .collect();
        (PageLinks { links, nofollow }, error)
    }
}

fn identity(text: String) -> String {
    text
}

/// Text decoded as windows-1252 from bytes that are valid UTF-8, decoded as UTF-8 instead. (windows-1252 maps each
/// byte to one character and back, so the bytes are recovered exactly.)
fn windows_1252_to_utf_8(text: String) -> String {
    if text.is_ascii() {
        return text;
    }
    let (bytes, _, _) = WINDOWS_1252.encode(&text);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A tokenizer that records link values into `found`.
fn rewriter(
    found: &Rc<RefCell<Found>>,
    encoding: AsciiCompatibleEncoding,
) -> HtmlRewriter<'static, Discard> {
    let link = |attribute: &'static str, frame: bool| {
        let found = Rc::clone(found);
        move |el: &mut Element| {
            if el.has_attribute("download") {
                return Ok(());
            }
            // `<iframe href=.. src=..>`: the selector needs `src`, the value read is `href` first (as before).
            let value = el
                .get_attribute("href")
                .or_else(|| el.get_attribute(attribute));
            if let Some(value) = value {
                let mut found = found.borrow_mut();
                if frame {
                    if found.frameset {
                        found.links.push(value);
                    }
                } else if !found.frameset {
                    found.body_started = true;
                    found.links.push(value);
                }
            }
            Ok(())
        }
    };
    let frameset = {
        let found = Rc::clone(found);
        move |_: &mut Element| {
            let mut found = found.borrow_mut();
            if !found.body_started {
                found.frameset = true;
            }
            Ok(())
        }
    };
    let base = {
        let found = Rc::clone(found);
        move |el: &mut Element| {
            let mut found = found.borrow_mut();
            if found.base.is_none() {
                found.base = el.get_attribute("href");
            }
            Ok(())
        }
    };
    let meta = {
        let found = Rc::clone(found);
        move |el: &mut Element| {
            let is_robots = el
                .get_attribute("name")
                .is_some_and(|name| name.eq_ignore_ascii_case("robots"));
            if let (true, Some(content)) = (is_robots, el.get_attribute("content")) {
                found.borrow_mut().robots.push(content);
            }
            Ok(())
        }
    };
    let settings = Settings::new()
        .with_encoding(encoding)
        .with_strict(false)
        .append_element_content_handler(element!("a[href]", link("href", false)))
        .append_element_content_handler(element!("area[href]", link("href", false)))
        .append_element_content_handler(element!("iframe[src]", link("src", false)))
        .append_element_content_handler(element!("frame[src]", link("src", true)))
        .append_element_content_handler(element!("frameset", frameset))
        .append_element_content_handler(element!("base[href]", base))
        .append_element_content_handler(element!("meta[name][content]", meta));
    HtmlRewriter::new(settings, Discard)
}

/// Decodes a whole body as a whole-body decode would: the declared charset (byte-order mark first), UTF-8 when
/// none is declared and windows-1252 when undeclared and not UTF-8. Returns the text (lossy) and, when the body is
/// not valid in the declared charset, what is wrong.
fn decode(declared: &Declared, body: &[u8]) -> (String, Option<String>) {
    match declared {
        Declared::Unknown(label) => {
            let (text, _, _) = UTF_8.decode(body);
            (
                text.into_owned(),
                Some(format!("unknown charset {label:?}")),
            )
        }
        Declared::Known(encoding) => {
            let (text, used, had_errors) = encoding.decode(body);
            let error = had_errors.then(|| {
                format!(
                    "invalid {} in a page declared as {}",
                    used.name(),
                    encoding.name()
                )
            });
            (text.into_owned(), error)
        }
        Declared::None => {
            let (text, _, had_errors) = UTF_8.decode(body);
            if had_errors {
                let (text, _, _) = WINDOWS_1252.decode(body);
                (text.into_owned(), None)
            } else {
                (text.into_owned(), None)
            }
        }
    }
}

/// The links an HTML5 parser building a whole DOM finds (scraper, html5ever): the extractor the crawler used
/// before the streaming one, kept as the reference the streaming one is tested against.
#[cfg(test)]
pub mod dom {
    use std::sync::LazyLock;

    use scraper::{Html, Selector};
    use url::Url;

    use super::{PageLinks, resolve};

    static LINKS: LazyLock<Selector> = LazyLock::new(|| {
        Selector::parse("a[href], area[href], iframe[src], frame[src]").expect("a valid selector")
    });
    static BASE: LazyLock<Selector> =
        LazyLock::new(|| Selector::parse("base[href]").expect("a valid selector"));
    static META_ROBOTS: LazyLock<Selector> = LazyLock::new(|| {
        Selector::parse(r#"meta[name="robots" i][content]"#).expect("a valid selector")
    });

    /// The body decoded whole (as `extract` decodes it), then parsed into a DOM.
    pub fn extract(
        page_url: &Url,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (PageLinks, Option<String>) {
        let probe = super::LinkExtractor::new(page_url, content_type);
        let (text, error) = super::decode(&probe.declared, body);
        (extract_text(page_url, &text), error)
    }

    /// Parses an HTML document and returns its http(s) links resolved against `page_url` (or its `<base href>`).
    pub fn extract_text(page_url: &Url, html: &str) -> PageLinks {
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
            .filter(|element| element.value().attr("download").is_none())
            .filter_map(|element| {
                let value = element.value();
                value.attr("href").or_else(|| value.attr("src"))
            })
            .filter_map(|href| resolve(&base, href))
            .filter(|url| seen.insert(url.as_str().to_owned()))
            .collect();
        PageLinks { links, nofollow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const HTML: Option<&str> = Some("text/html; charset=utf-8");

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
        let found: Vec<String> = extract(&base, HTML, html.as_bytes())
            .0
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
        let (links, _) = extract(&page, HTML, html.as_bytes());
        assert!(links.nofollow);
        assert_eq!(links.links, [url("http://example.com/base/x.html")]);
        assert!(!extract(&page, HTML, b"<a href=x>").0.nofollow);
    }

    #[test]
    fn broken_html_still_yields_links() {
        let page = url("http://example.com/");
        let (links, _) = extract(
            &page,
            HTML,
            b"<p><a href='/one'>one<a href=/two>two</p></div><a href=\"/three\"",
        );
        assert_eq!(
            links.links[..2],
            [url("http://example.com/one"), url("http://example.com/two")]
        );
    }

    #[test]
    fn windows_1252_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let (text, _, _) = WINDOWS_1252.decode(&bytes);
        let (back, _, unmappable) = WINDOWS_1252.encode(&text);
        assert!(!unmappable);
        assert_eq!(&*back, &bytes[..]);
    }

    #[test]
    fn encodings() {
        let page = url("http://example.com/");
        let get = |ct: Option<&str>, body: &[u8]| {
            let (links, error) = extract(&page, ct, body);
            (
                links.links.iter().map(Url::to_string).collect::<Vec<_>>(),
                error,
            )
        };
        // Declared UTF-8, valid: é percent-encoded from UTF-8.
        assert_eq!(
            get(HTML, "<a href=caf\u{e9}>".as_bytes()),
            (vec!["http://example.com/caf%C3%A9".to_owned()], None)
        );
        // Declared UTF-8, invalid: the link is still read, the error said.
        let (links, error) = get(HTML, b"<a href=/x>\xff");
        assert_eq!(links, ["http://example.com/x"]);
        assert!(
            error
                .unwrap()
                .contains("invalid UTF-8 in a page declared as UTF-8")
        );
        // Declared latin-1 (windows-1252).
        assert_eq!(
            get(Some("text/html; charset=iso-8859-1"), b"<a href=caf\xe9>"),
            (vec!["http://example.com/caf%C3%A9".to_owned()], None)
        );
        // Undeclared: UTF-8 when valid, windows-1252 when not, no error either way.
        assert_eq!(
            get(Some("text/html"), "<a href=caf\u{e9}>".as_bytes()),
            (vec!["http://example.com/caf%C3%A9".to_owned()], None)
        );
        assert_eq!(
            get(Some("text/html"), b"<a href=caf\xe9>"),
            (vec!["http://example.com/caf%C3%A9".to_owned()], None)
        );
        // Unknown charset: read as UTF-8, said.
        let (links, error) = get(Some("text/html; charset=klingon"), b"<a href=/k>");
        assert_eq!(links, ["http://example.com/k"]);
        assert!(error.unwrap().contains("unknown charset"));
        // UTF-16 (with its byte-order mark): decoded whole first.
        let mut utf16 = vec![0xff, 0xfe];
        for unit in "<a href=/u16>".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(get(Some("text/html"), &utf16).0, ["http://example.com/u16"]);
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let page = url("http://example.com/d/");
        let html = "<!doctype html><base href=/b/><a href=\"x&amp;y\">1</a><!-- <a href=c> --><a HREF=caf\u{e9}>2</a>";
        let whole = extract(&page, Some("text/html"), html.as_bytes());
        for size in [1, 2, 3, 5, 7, 64] {
            let mut extractor = LinkExtractor::new(&page, Some("text/html"));
            for chunk in html.as_bytes().chunks(size) {
                extractor.write(chunk);
            }
            assert_eq!(extractor.finish(), whole, "chunks of {size}");
        }
        assert_eq!(whole.0.links.len(), 2);
    }
}
