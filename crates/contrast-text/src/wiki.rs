//! English Wikipedia sentences from a MediaWiki XML dump: the article bodies, stripped of wiki
//! markup, split into sentences by rule, filtered by length and deduplicated.
//!
//! This is how a project machine without SimCSE's `wiki1m_for_simcse.txt` gets a real
//! Wikipedia corpus: the `gensim` wheel carries a shortened dump of the first articles
//! (see [`wiki_sentences_file`](crate::wiki_sentences_file)).

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use crate::Error;

/// Shortest sentence kept, in whitespace-separated words.
pub const WIKI_MIN_WORDS: usize = 5;
/// Longest sentence kept, in whitespace-separated words (SimCSE truncates to 32 tokens).
pub const WIKI_MAX_WORDS: usize = 64;

/// What the extraction kept and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WikiCounts {
    /// `<page>` elements read.
    pub pages: usize,
    /// Pages of the article namespace (0) that are not redirects: the ones used.
    pub articles: usize,
    /// Sentences the splitter produced.
    pub candidates: usize,
    /// Dropped: fewer than [`WIKI_MIN_WORDS`] words.
    pub too_short: usize,
    /// Dropped: more than [`WIKI_MAX_WORDS`] words.
    pub too_long: usize,
    /// Dropped: not shaped like prose (no capital or digit first, no final punctuation, or
    /// markup left over).
    pub not_prose: usize,
    /// Dropped: the same sentence seen before.
    pub duplicates: usize,
    /// Sentences kept.
    pub kept: usize,
}

/// Sentences extracted from one or more dumps, in dump order, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WikiSentences {
    /// The sentences.
    pub sentences: Vec<String>,
    /// What was kept and dropped.
    pub counts: WikiCounts,
}

/// Decompresses a bzip2 file (all its streams), in pure Rust.
///
/// # Errors
/// [`Error::Archive`] when the data is not bzip2 or is truncated.
pub fn decompress_bz2(bytes: &[u8], path: &Path) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    bzip2::read::MultiBzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::archive(path, format!("corrupt bzip2 data: {e}")))?;
    Ok(out)
}

/// Extracts the sentences of every article of the dumps `xmls` (MediaWiki XML export text),
/// deduplicated across all of them, in order of first appearance.
pub fn wiki_sentences(xmls: &[&str]) -> WikiSentences {
    let mut out = WikiSentences::default();
    let mut seen = HashSet::new();
    let c = &mut out.counts;
    for xml in xmls {
        for page in elements(xml, "page") {
            c.pages += 1;
            let ns = elements(page, "ns").next().map(str::trim);
            let Some(body) = text_body(page) else {
                continue;
            };
            let body = unescape(body);
            if ns != Some("0")
                || page.contains("<redirect")
                || body
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("#REDIRECT")
            {
                continue;
            }
            c.articles += 1;
            for paragraph in strip_wiki_markup(&body).lines() {
                for s in split_sentences(paragraph) {
                    c.candidates += 1;
                    let words = s.split_whitespace().count();
                    if words < WIKI_MIN_WORDS {
                        c.too_short += 1;
                    } else if words > WIKI_MAX_WORDS {
                        c.too_long += 1;
                    } else if !is_prose(s) {
                        c.not_prose += 1;
                    } else if !seen.insert(s.to_string()) {
                        c.duplicates += 1;
                    } else {
                        out.sentences.push(s.to_string());
                    }
                }
            }
        }
    }
    out.counts.kept = out.sentences.len();
    out
}

/// The contents of each `<name>...</name>` element (with or without attributes) of `xml`,
/// not nested.
fn elements<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find(&open)?;
            let after = &rest[start + open.len()..];
            // `<pages>` is not `<page>`.
            if !after.starts_with(['>', ' ', '\t', '\n', '/']) {
                rest = after;
                continue;
            }
            let gt = after.find('>')?;
            if after[..gt].ends_with('/') {
                rest = &after[gt + 1..];
                return Some("");
            }
            let body = &after[gt + 1..];
            let end = body.find(&close).unwrap_or(body.len());
            rest = &body[end..];
            return Some(&body[..end]);
        }
    })
}

/// The `<text>` element of a page (`None` when the page has none).
fn text_body(page: &str) -> Option<&str> {
    elements(page, "text").next()
}

/// Replaces the five XML entities and numeric character references.
fn unescape(s: &str) -> String {
    decode_entities(s, false)
}

/// Decodes `&name;`, `&#N;` and `&#xH;`: the XML five always, and with `html` the HTML entities
/// common in Wikipedia articles. Unknown or malformed references stay as they are.
fn decode_entities(s: &str, html: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let semi = tail[1..]
            .char_indices()
            .take(10)
            .find(|&(_, c)| c == ';' || !c.is_ascii_alphanumeric() && c != '#')
            .filter(|&(_, c)| c == ';')
            .map(|(i, _)| i + 1);
        let decoded = semi.and_then(|end| entity(&tail[1..end], html).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push_str(c.as_str());
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of one entity name (without `&` and `;`).
fn entity(name: &str, html: bool) -> Option<String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).map(String::from);
    }
    let xml = match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "quot" => "\"",
        "apos" => "'",
        _ => "",
    };
    if !xml.is_empty() {
        return Some(xml.into());
    }
    if !html {
        return None;
    }
    let c = match name {
        "nbsp" | "ensp" | "emsp" | "thinsp" => " ",
        "ndash" => "\u{2013}",
        "mdash" => "\u{2014}",
        "minus" => "\u{2212}",
        "hellip" => "\u{2026}",
        "lsquo" => "\u{2018}",
        "rsquo" => "\u{2019}",
        "ldquo" => "\u{201c}",
        "rdquo" => "\u{201d}",
        "laquo" => "\u{ab}",
        "raquo" => "\u{bb}",
        "times" => "\u{d7}",
        "deg" => "\u{b0}",
        "middot" => "\u{b7}",
        "copy" => "\u{a9}",
        "eacute" => "\u{e9}",
        "zwj" | "zwnj" | "shy" | "lrm" | "rlm" => "",
        _ => return None,
    };
    Some(c.into())
}

/// Tags whose content is not prose and goes with them.
const DROPPED_ELEMENTS: [&str; 14] = [
    "ref",
    "math",
    "gallery",
    "timeline",
    "code",
    "syntaxhighlight",
    "source",
    "pre",
    "score",
    "imagemap",
    "chem",
    "hiero",
    "table",
    "references",
];

/// Link targets with these prefixes are not shown in the text (images, categories).
const DROPPED_NAMESPACES: [&str; 4] = ["file", "image", "category", "media"];

/// Plain text of an article's wikitext (already XML-unescaped), one paragraph per line:
/// comments, `<ref>` and other non-prose elements, templates `{{..}}` (nested), tables `{|..|}`,
/// file and category links, headings, list and table lines, and bold/italic quotes removed;
/// `[[target|label]]` becomes `label`, `[url label]` becomes `label`, remaining tags are
/// dropped and HTML entities decoded.
pub fn strip_wiki_markup(wikitext: &str) -> String {
    let s = remove_comments(wikitext);
    let s = remove_elements(&s);
    let s = remove_templates_and_tables(&s);
    let s = replace_links(&s);
    let s = replace_external_links(&s);
    let s = remove_tags(&s);
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let line = line.trim();
        if line.is_empty()
            || line.starts_with(['=', '*', '#', ':', ';', '|', '!', '{', '}'])
            || line.starts_with("----")
        {
            continue;
        }
        let line = remove_quote_runs(line);
        let line = decode_entities(&line, true);
        let line = tidy(&line);
        if !line.is_empty() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn remove_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// If `s` (at a `<`) opens a tag named `name` (case-insensitive), the tag's length and whether
/// it closes itself (`<ref name="a" />`).
fn opening_tag(s: &str, name: &str) -> Option<(usize, bool)> {
    let after = s.get(1..1 + name.len())?;
    if !after.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = &s[1 + name.len()..];
    if !rest.starts_with(['>', ' ', '/', '\t', '\n']) {
        return None;
    }
    let gt = rest.find('>')?;
    Some((1 + name.len() + gt + 1, rest[..gt].ends_with('/')))
}

/// Position just after `</name>` in `s`, case-insensitive.
fn closing_tag_end(s: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = s[from..].find("</") {
        let at = from + p;
        let after = &s[at + 2..];
        let named = after
            .get(..name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name));
        if named && after[name.len()..].starts_with(['>', ' ', '\t', '\n']) {
            let gt = after.find('>')?;
            return Some(at + 2 + gt + 1);
        }
        from = at + 2;
    }
    None
}

/// Removes the elements of [`DROPPED_ELEMENTS`] with their content.
fn remove_elements(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    'scan: while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let at = &rest[lt..];
        for name in DROPPED_ELEMENTS {
            if let Some((len, self_closing)) = opening_tag(at, name) {
                if self_closing {
                    rest = &at[len..];
                } else {
                    // An unclosed element loses only its opening tag.
                    let end = closing_tag_end(&at[len..], name).unwrap_or(0);
                    rest = &at[len + end..];
                }
                continue 'scan;
            }
        }
        out.push('<');
        rest = &at[1..];
    }
    out.push_str(rest);
    out
}

/// True at the start of a line, ignoring spaces before `i`.
fn at_line_start(s: &[u8], i: usize) -> bool {
    s[..i]
        .iter()
        .rev()
        .find(|&&b| b != b' ' && b != b'\t')
        .is_none_or(|&b| b == b'\n')
}

/// Removes templates `{{..}}` and tables `{|..|}`, nested in any order.
fn remove_templates_and_tables(s: &str) -> String {
    #[derive(PartialEq)]
    enum Open {
        Template,
        Table,
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let pair = (b[i], b.get(i + 1).copied());
        let opens = match pair {
            (b'{', Some(b'{')) => Some(Open::Template),
            (b'{', Some(b'|')) if at_line_start(b, i) => Some(Open::Table),
            _ => None,
        };
        if let Some(kind) = opens {
            if stack.is_empty() {
                out.push_str(&s[copied..i]);
            }
            stack.push(kind);
            i += 2;
            continue;
        }
        let closes = match (pair, stack.last()) {
            ((b'}', Some(b'}')), Some(Open::Template)) => true,
            ((b'|', Some(b'}')), Some(Open::Table)) => at_line_start(b, i),
            _ => false,
        };
        if closes {
            stack.pop();
            i += 2;
            if stack.is_empty() {
                copied = i;
            }
            continue;
        }
        i += 1;
    }
    if stack.is_empty() {
        out.push_str(&s[copied..]);
    }
    out
}

/// Index just after the `]]` that closes the `[[` at the start of `s`, nested links counted.
fn link_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'[' && b[i + 1] == b'[' {
            depth += 1;
            i += 2;
        } else if b[i] == b']' && b[i + 1] == b']' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// `[[target|label]]` becomes `label` (`target` without one); links to files, images and
/// categories disappear with their captions.
fn replace_links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("[[") {
        out.push_str(&rest[..start]);
        let at = &rest[start..];
        let Some(end) = link_end(at) else {
            out.push_str(at);
            return out;
        };
        let inner = &at[2..end - 2];
        let target = inner.split('|').next().unwrap_or("");
        let dropped = target.split_once(':').is_some_and(|(ns, _)| {
            DROPPED_NAMESPACES
                .iter()
                .any(|d| ns.trim().eq_ignore_ascii_case(d))
        });
        if !dropped {
            let shown = match inner.rfind('|') {
                Some(bar) if !inner[..bar].contains("[[") => &inner[bar + 1..],
                _ => inner,
            };
            let shown = if shown.is_empty() { target } else { shown };
            out.push_str(&replace_links(shown.trim_start_matches(':')));
        }
        rest = &at[end..];
    }
    out.push_str(rest);
    out
}

/// `[http://x label]` becomes `label`; a bare `[http://x]` disappears.
fn replace_external_links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('[') {
        out.push_str(&rest[..start]);
        let at = &rest[start + 1..];
        let is_url = ["http://", "https://", "ftp://", "//"]
            .iter()
            .any(|p| at.starts_with(p));
        match at.find(']').filter(|_| is_url) {
            Some(end) if !at[..end].contains('\n') => {
                if let Some((_, label)) = at[..end].split_once(' ') {
                    out.push_str(label.trim());
                }
                rest = &at[end + 1..];
            }
            _ => {
                out.push('[');
                rest = at;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Drops every remaining HTML-like tag (`<br/>` becomes a space); a `<` that opens no tag stays.
fn remove_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let at = &rest[lt + 1..];
        let name_start = at.strip_prefix('/').unwrap_or(at);
        let is_tag = name_start.starts_with(|c: char| c.is_ascii_alphabetic());
        match at
            .find('>')
            .filter(|&gt| is_tag && !at[..gt].contains('\n'))
        {
            Some(gt) => {
                if at[..gt].to_ascii_lowercase().starts_with("br") {
                    out.push(' ');
                }
                rest = &at[gt + 1..];
            }
            None => {
                out.push('<');
                rest = at;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Removes runs of two or more apostrophes (wiki italic and bold).
fn remove_quote_runs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = 0;
    for c in s.chars() {
        if c == '\'' {
            run += 1;
            continue;
        }
        if run == 1 {
            out.push('\'');
        }
        run = 0;
        out.push(c);
    }
    if run == 1 {
        out.push('\'');
    }
    out
}

/// Collapses whitespace and repairs what removed markup leaves behind: spaces before
/// punctuation and empty parentheses.
fn tidy(s: &str) -> String {
    let mut t: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let before = t.len();
        for (from, to) in [
            (" ,", ","),
            (" .", "."),
            (" ;", ";"),
            (" :", ":"),
            (" )", ")"),
            ("( ", "("),
            ("(,", "("),
            ("(;", "("),
            ("()", ""),
            (",,", ","),
            ("  ", " "),
        ] {
            t = t.replace(from, to);
        }
        if t.len() == before {
            return t.trim().to_string();
        }
    }
}

/// Abbreviations after which a period does not end a sentence (compared in lower case, without
/// the period).
const ABBREVIATIONS: [&str; 46] = [
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "e.g", "i.e", "no", "nos", "vol",
    "pp", "fig", "approx", "ca", "c", "gen", "col", "lt", "sgt", "capt", "gov", "sen", "rev",
    "inc", "ltd", "co", "corp", "jan", "feb", "aug", "sept", "oct", "nov", "dec", "mt", "ft",
    "u.s", "u.k", "a.m", "p.m", "al", "cf",
];

/// Splits a paragraph into sentences: after `.`, `!` or `?` (and any closing quotes or
/// brackets) followed by a space and a capital letter, a digit or an opening quote or bracket,
/// unless the period ends an abbreviation or an initial (`J. R. R. Tolkien`).
pub fn split_sentences(paragraph: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = paragraph.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (_, c) = chars[k];
        if !matches!(c, '.' | '!' | '?') {
            k += 1;
            continue;
        }
        let mut end = k + 1;
        while end < chars.len()
            && matches!(
                chars[end].1,
                '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '\u{201d}' | '\u{2019}'
            )
        {
            end += 1;
        }
        let next_ok = end + 1 < chars.len() && chars[end].1 == ' ' && {
            let n = chars[end + 1].1;
            n.is_uppercase() || n.is_ascii_digit() || matches!(n, '"' | '(' | '\u{201c}' | '\'')
        };
        if next_ok && !(c == '.' && ends_abbreviation(&paragraph[start..chars[k].0])) {
            let byte_end = chars.get(end).map_or(paragraph.len(), |&(b, _)| b);
            let s = paragraph[start..byte_end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = byte_end;
        }
        k = end;
    }
    let s = paragraph[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// True when the text before a period ends with an abbreviation or a single-letter initial.
fn ends_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"')
        .next()
        .unwrap_or("");
    let lower = word.to_lowercase();
    let letters = lower.chars().filter(|c| c.is_alphabetic()).count();
    (letters == 1 && lower.chars().count() == 1) || ABBREVIATIONS.contains(&lower.as_str())
}

/// A sentence that starts like one and ends like one, with no markup left in it.
fn is_prose(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    let starts =
        first.is_uppercase() || first.is_ascii_digit() || matches!(first, '"' | '\u{201c}');
    let trimmed = s.trim_end_matches(['"', '\'', ')', '\u{201d}', '\u{2019}']);
    let ends = trimmed.ends_with(['.', '!', '?']);
    let markup = ["{", "}", "[", "]", "|", "<", ">", "=", "__", "http", "''"]
        .iter()
        .any(|m| s.contains(m));
    starts && ends && !markup && !has_entity(s)
}

/// True when `s` holds an HTML entity that [`decode_entities`] left undecoded (`&eta;`).
fn has_entity(s: &str) -> bool {
    s.match_indices('&').any(|(i, _)| {
        let name = s[i + 1..]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .next()
            .unwrap_or("");
        !name.is_empty() && s[i + 1 + name.len()..].starts_with(';')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markup_is_stripped() {
        let text = "{{Infobox person|name=X|note={{nested|a}}}}\n\
            '''Anarchism''' is a [[political philosophy]] that advocates [[self-governance|self-governed]] \
            societies.<ref name=\"a\">Woodcock, {{cite book|title=T}}</ref> It has [[cat]]s.<ref name=b/>\n\
            == History ==\n\
            [[File:Flag.svg|thumb|A [[flag]] of the movement]]\n\
            {| class=\"wikitable\"\n| cell || cell\n|}\n\
            * a list item\n\
            The word comes from ''anarchos'' ([[Greek language|Greek]]: {{lang|grc|ἀναρχία}}), &quot;without rulers&quot;&nbsp;[http://example.org a source].<!-- hidden -->\n\
            [[Category:Anarchism]]\n";
        let plain = strip_wiki_markup(text);
        assert_eq!(
            plain,
            "Anarchism is a political philosophy that advocates self-governed societies. It has cats.\n\
             The word comes from anarchos (Greek:), \"without rulers\" a source.\n"
        );
    }

    #[test]
    fn sentences_split_at_ends_not_at_abbreviations() {
        let p = "Dr. Smith met J. R. R. Tolkien in 1950. They talked (briefly). \"Why?\" he asked! \
                 The U.S. Army arrived at 5 p.m. on Monday. No. 5 won. Last one";
        assert_eq!(
            split_sentences(p),
            [
                "Dr. Smith met J. R. R. Tolkien in 1950.",
                "They talked (briefly).",
                "\"Why?\" he asked!",
                "The U.S. Army arrived at 5 p.m. on Monday.",
                "No. 5 won.",
                "Last one",
            ]
        );
        assert!(split_sentences("").is_empty());
        assert_eq!(split_sentences("e.g. this. ok"), ["e.g. this. ok"]);
    }

    #[test]
    fn articles_only_filtered_and_deduplicated() {
        let page = |ns: u8, text: &str| {
            format!(
                "<page><title>T</title><ns>{ns}</ns><revision><text xml:space=\"preserve\">{text}</text></revision></page>"
            )
        };
        let xml = [
            page(0, "#REDIRECT [[Other]]"),
            page(4, "This project page has enough words to count. Really it does."),
            page(0, "First article has five words. Too short. First article has five words. \
                     &lt;ref&gt;A cited source sentence here.&lt;/ref&gt;\nlowercase start is not prose here"),
            page(0, "First article has five words. Another article, another sentence here!"),
        ]
        .concat();
        let xml = format!("<mediawiki><siteinfo/>{xml}</mediawiki>");
        let w = wiki_sentences(&[&xml]);
        assert_eq!(
            w.sentences,
            [
                "First article has five words.",
                "Another article, another sentence here!"
            ]
        );
        let c = w.counts;
        assert_eq!((c.pages, c.articles, c.kept), (4, 2, 2));
        assert_eq!((c.too_short, c.duplicates, c.not_prose), (1, 2, 1));
        assert_eq!(c.candidates, 6);
    }

    #[test]
    fn entities_decode_and_bad_ones_stay() {
        assert_eq!(
            decode_entities("a &amp;lt; &#65;&#x42; &bogus; & x", false),
            "a &lt; AB &bogus; & x"
        );
        assert_eq!(decode_entities("1&ndash;2&nbsp;km", true), "1\u{2013}2 km");
        assert_eq!(
            decode_entities("&#99999999999;&#x;", true),
            "&#99999999999;&#x;"
        );
    }

    #[test]
    fn sentences_with_undecoded_entities_are_not_prose() {
        assert!(!is_prose("The effect sizes are &eta;2 and more here."));
        assert!(is_prose("Tom & Jerry; a cartoon with five words."));
    }

    #[test]
    fn corrupt_bz2_is_an_error() {
        let e = decompress_bz2(b"BZh9 not really", Path::new("a.bz2")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read archive a.bz2: corrupt bzip2 data"),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn extraction_never_panics(text in "[a-zA-Z .!?'\"|{}\\[\\]<>/=&;#\n:-]{0,200}") {
            let xml = format!("<page><ns>0</ns><text>{text}</text></page>");
            let w = wiki_sentences(&[&xml, &text]);
            for s in &w.sentences {
                let n = s.split_whitespace().count();
                prop_assert!((WIKI_MIN_WORDS..=WIKI_MAX_WORDS).contains(&n));
            }
            let _ = split_sentences(&text);
            let _ = strip_wiki_markup(&text);
        }

        #[test]
        fn bz2_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut with_magic = b"BZh9".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = decompress_bz2(&bytes, Path::new("x"));
            let _ = decompress_bz2(&with_magic, Path::new("x"));
        }
    }
}
