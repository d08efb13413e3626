//! Search by the words of titles and tags, search-as-you-type included.
//!
//! The query is normalised like the stored `keywords` (see [`crate::model::words`]). Every
//! word must match a keyword exactly, except the last one while it is being typed (the query
//! does not end with a space), which matches any keyword starting with it. The repository
//! returns the newest candidates; they are ranked here: first the videos whose title holds
//! every word, then those matching more words in the title, then by publish time and id. That
//! order is total and its keys are stable, so the cursor `(tier, list_at, id)` pages through
//! it without repeats while videos arrive.

use std::cmp::Ordering;

use crate::error::Error;
use crate::model::{words, VideoDoc};
use crate::repo::{Cursor, KeywordQuery};

/// Most words a query may have.
pub const MAX_TERMS: usize = 8;
/// Most candidates ranked per query (the newest that match).
pub const MAX_CANDIDATES: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub struct ParsedQuery {
    pub keywords: KeywordQuery,
}

impl ParsedQuery {
    pub fn parse(q: &str) -> Result<Self, Error> {
        let mut terms = words(q);
        if terms.is_empty() {
            return Err(Error::invalid(
                "q",
                "must contain at least one letter or digit",
            ));
        }
        if terms.len() > MAX_TERMS {
            return Err(Error::invalid("q", format!("at most {MAX_TERMS} words")));
        }
        let typing = q.chars().last().is_some_and(char::is_alphanumeric);
        let prefix = if typing { terms.pop() } else { None };
        terms.sort();
        terms.dedup();
        // a finished word equal to the prefix adds nothing
        if let Some(p) = &prefix {
            terms.retain(|t| t != p);
        }
        Ok(Self {
            keywords: KeywordQuery {
                words: terms,
                prefix,
            },
        })
    }

    /// How many query terms the title lacks (0 = all of them are title words).
    pub fn tier(&self, doc: &VideoDoc) -> u32 {
        let title = words(&doc.title);
        let q = &self.keywords;
        let mut missing = q.words.iter().filter(|w| !title.contains(w)).count();
        if let Some(p) = &q.prefix {
            if !title.iter().any(|t| t.starts_with(p.as_str())) {
                missing += 1;
            }
        }
        missing as u32
    }
}

fn rank_cmp(a: &(u32, &VideoDoc), b: &(u32, &VideoDoc)) -> Ordering {
    a.0.cmp(&b.0)
        .then(b.1.list_at.cmp(&a.1.list_at))
        .then(b.1.id.cmp(&a.1.id))
}

/// Ranks candidates and returns the page after `after`, with the next page's cursor.
pub fn rank(
    query: &ParsedQuery,
    candidates: Vec<VideoDoc>,
    after: Option<&Cursor>,
    limit: usize,
) -> (Vec<VideoDoc>, Option<Cursor>) {
    let mut ranked: Vec<(u32, &VideoDoc)> = candidates.iter().map(|d| (query.tier(d), d)).collect();
    ranked.sort_by(rank_cmp);
    let start = match after {
        None => 0,
        Some(c) => ranked.partition_point(|(tier, d)| {
            // strictly before the cursor in rank order
            (
                *tier,
                std::cmp::Reverse(d.list_at),
                std::cmp::Reverse(d.id.as_str()),
            ) <= (
                c.tier,
                std::cmp::Reverse(c.list_at),
                std::cmp::Reverse(c.id.as_str()),
            )
        }),
    };
    let rest = &ranked[start..];
    let page: Vec<(u32, &VideoDoc)> = rest.iter().take(limit).copied().collect();
    let next = (rest.len() > limit)
        .then(|| page.last().map(|(t, d)| Cursor::after(d, *t)))
        .flatten();
    (page.into_iter().map(|(_, d)| d.clone()).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        let q = ParsedQuery::parse("Rust Gam").unwrap();
        assert_eq!(q.keywords.words, ["rust"]);
        assert_eq!(q.keywords.prefix.as_deref(), Some("gam"));
        let q = ParsedQuery::parse("rust game ").unwrap();
        assert_eq!(q.keywords.words, ["game", "rust"]);
        assert_eq!(q.keywords.prefix, None);
        assert!(matches!(
            ParsedQuery::parse(" ?! "),
            Err(Error::Invalid { .. })
        ));
    }
}
