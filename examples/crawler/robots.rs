//! robots.txt, fetched once per origin and parsed by `texting_robots`.
//!
//! What a fetch of robots.txt means follows RFC 9309: 2xx is parsed; 4xx means "no rules, everything allowed";
//! 5xx means "the site may be in trouble, crawl nothing"; a network error means nothing can be fetched from that
//! origin anyway, so its pages are allowed (and fail, each counted under its error kind).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use texting_robots::Robot;
use url::Url;

use super::fetch::{Fetcher, ROBOTS_AGENT};

/// The rules of one origin.
pub enum Rules {
    AllowAll,
    DisallowAll,
    Parsed(Box<Robot>),
}

impl Rules {
    pub fn allowed(&self, url: &Url) -> bool {
        match self {
            Rules::AllowAll => true,
            Rules::DisallowAll => url.path() == "/robots.txt",
            Rules::Parsed(robot) => robot.allowed(url.as_str()),
        }
    }
}

/// Per-origin robots.txt rules; each origin's file is fetched at most once, even when many workers ask at once.
#[derive(Default)]
pub struct RobotsCache {
    origins: Mutex<HashMap<String, Arc<OnceLock<Rules>>>>,
}

fn origin_key(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl RobotsCache {
    /// The rules for `url`'s origin if they are already known (never blocks on the network).
    pub fn known(&self, url: &Url) -> Option<Arc<OnceLock<Rules>>> {
        let cell = self
            .origins
            .lock()
            .expect("robots cache lock")
            .get(&origin_key(url))
            .cloned()?;
        cell.get().is_some().then_some(cell)
    }

    /// Is `url` allowed? `None` when its origin's robots.txt has not been fetched yet.
    pub fn check_known(&self, url: &Url) -> Option<bool> {
        self.known(url)
            .and_then(|cell| cell.get().map(|rules| rules.allowed(url)))
    }

    /// Is `url` allowed? Fetches the origin's robots.txt first if nobody has (other callers for the same origin
    /// wait for that one fetch).
    pub fn check(&self, url: &Url, fetcher: &Fetcher) -> bool {
        let cell = self
            .origins
            .lock()
            .expect("robots cache lock")
            .entry(origin_key(url))
            .or_default()
            .clone();
        cell.get_or_init(|| load(url, fetcher)).allowed(url)
    }
}

/// Fetches and parses `url`'s origin's robots.txt, following up to five redirects.
fn load(url: &Url, fetcher: &Fetcher) -> Rules {
    let Ok(mut robots_url) = url.join("/robots.txt") else {
        return Rules::AllowAll;
    };
    for _ in 0..=5 {
        let Some(response) = fetcher.fetch_small(&robots_url) else {
            return Rules::AllowAll;
        };
        match (response.status, response.location) {
            (200..=299, _) => {
                return match Robot::new(ROBOTS_AGENT, &response.body) {
                    Ok(robot) => Rules::Parsed(Box::new(robot)),
                    Err(_) => Rules::AllowAll,
                };
            }
            (300..=399, Some(location)) => match robots_url.join(&location) {
                Ok(next) => robots_url = next,
                Err(_) => return Rules::AllowAll,
            },
            (500..=599, _) => return Rules::DisallowAll,
            _ => return Rules::AllowAll,
        }
    }
    Rules::AllowAll
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_rules() {
        let robot = Robot::new(
            ROBOTS_AGENT,
            b"User-agent: *\nDisallow: /private/\n\nUser-agent: concurrent-futures-crawler\nDisallow: /nocf\n",
        )
        .unwrap();
        let rules = Rules::Parsed(Box::new(robot));
        let u = |p: &str| Url::parse("http://h.test").unwrap().join(p).unwrap();
        assert!(rules.allowed(&u("/")));
        assert!(!rules.allowed(&u("/nocf/x")));
        // The group naming this crawler replaces the `*` group.
        assert!(rules.allowed(&u("/private/x")));
        assert!(!Rules::DisallowAll.allowed(&u("/a")));
        assert!(Rules::AllowAll.allowed(&u("/a")));
    }
}
