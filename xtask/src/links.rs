//! The docs link check (`cargo xtask links`): relative links must resolve.
//!
//! Every relative link in README.md, ARCHITECTURE.md and docs/*.md must name
//! a file that exists and, for a markdown file, one of its headings; and
//! README.md has at most [`README_MAX_LINES`] lines.
//!
//! A link is `[text](path)`, `[text](path#anchor)` or `[text](#anchor)`
//! outside code (fenced blocks and inline code spans are skipped); targets
//! with a scheme (`http:`, `https:`, `mailto:`, ...) are not checked. A path
//! is relative to the linking file's folder (`/path` to the repository
//! root) and may name a folder. An anchor is checked against the ATX
//! headings (`# ...`) of a markdown target, slugged as GitHub does; anchors
//! into other files (`#L10`) are not checked.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// README.md longer than this fails the check: reference belongs in docs/.
pub const README_MAX_LINES: usize = 300;

/// A relative link found in a markdown file.
#[derive(Debug, PartialEq, Eq)]
pub struct Link {
    /// 1-based line of the link.
    pub line: usize,
    /// The target as written, `path#anchor`.
    pub target: String,
}

/// Checks the links of README.md, ARCHITECTURE.md and docs/*.md under
/// `root`, and README.md's length; fails naming every problem.
pub fn run(root: &Path) -> Result<()> {
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    let docs = root.join("docs");
    if docs.is_dir() {
        let mut pages: Vec<PathBuf> = std::fs::read_dir(&docs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        pages.sort();
        files.extend(pages);
    }
    let mut problems = Vec::new();
    let mut headings: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    for file in &files {
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{shown}: cannot read: {e}"));
                continue;
            }
        };
        if file == &root.join("README.md") {
            let lines = text.lines().count();
            if lines > README_MAX_LINES {
                problems.push(format!(
                    "{shown}: {lines} lines, more than the limit of {README_MAX_LINES}: move reference to docs/"
                ));
            }
        }
        for link in extract_links(&text) {
            count += 1;
            if let Err(why) = check_link(root, file, &link.target, &mut headings) {
                problems.push(format!(
                    "{shown}:{}: link `{}`: {why}",
                    link.line, link.target
                ));
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("xtask: {p}");
        }
        bail!(
            "{} problem(s) in the docs' links (README.md, ARCHITECTURE.md, docs/*.md)",
            problems.len()
        );
    }
    println!(
        "xtask: {count} relative links in {} files are good",
        files.len()
    );
    Ok(())
}

/// Checks one link of `file`: the target exists, and its anchor is a
/// heading of it. `headings` caches each markdown file's slugs.
fn check_link(
    root: &Path,
    file: &Path,
    target: &str,
    headings: &mut BTreeMap<PathBuf, Vec<String>>,
) -> std::result::Result<(), String> {
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let dest = if path.is_empty() {
        file.to_path_buf()
    } else if let Some(from_root) = path.strip_prefix('/') {
        root.join(from_root)
    } else {
        file.parent().unwrap_or(root).join(path)
    };
    let shown = dest
        .strip_prefix(root)
        .unwrap_or(&dest)
        .display()
        .to_string();
    if !dest.exists() {
        return Err(format!("no such file {shown}"));
    }
    let Some(anchor) = anchor else {
        return Ok(());
    };
    if dest.extension().is_none_or(|x| x != "md") {
        return Ok(());
    }
    if !headings.contains_key(&dest) {
        let text = std::fs::read_to_string(&dest)
            .map_err(|e| format!("cannot read {}: {e}", dest.display()))?;
        headings.insert(dest.clone(), heading_slugs(&text));
    }
    if headings[&dest].iter().any(|s| s == anchor) {
        Ok(())
    } else {
        Err(format!("no heading with anchor #{anchor} in {shown}"))
    }
}

/// GitHub's anchor for a heading's text: lower case, punctuation dropped
/// but for `-` and `_`, each space a `-`.
pub fn slug(heading: &str) -> String {
    heading
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown text's ATX headings, in order; a repeated one
/// gets `-1`, `-2`, ... as on GitHub.
pub fn heading_slugs(text: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut slugs = Vec::new();
    for (_, line) in prose_lines(text) {
        let trimmed = line.trim_start_matches(' ');
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        let rest = &trimmed[hashes..];
        let indent = line.len() - trimmed.len();
        if indent > 3
            || !(1..=6).contains(&hashes)
            || !(rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            continue;
        }
        let title = rest.trim().trim_end_matches('#').trim();
        let base = slug(title);
        let n = seen.entry(base.clone()).or_insert(0);
        slugs.push(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    slugs
}

/// The relative links of a markdown text, outside code. A link may wrap
/// across the lines of its paragraph.
pub fn extract_links(text: &str) -> Vec<Link> {
    let mut links = Vec::new();
    for (first, paragraph) in paragraphs(text) {
        let chars: Vec<char> = blank_code_spans(&paragraph).chars().collect();
        let line_of = |k: usize| first + chars[..k].iter().filter(|&&c| c == '\n').count();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '[' {
                i += 1;
                continue;
            }
            let Some(close) = matching(&chars, i, '[', ']') else {
                i += 1;
                continue;
            };
            if chars.get(close + 1) != Some(&'(') {
                i += 1;
                continue;
            }
            let Some(end) = matching(&chars, close + 1, '(', ')') else {
                i += 1;
                continue;
            };
            let inside: String = chars[close + 2..end].iter().collect();
            // `(path "title")` and `(<path>)` forms.
            let target = inside.split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            if !target.is_empty() && !has_scheme(target) {
                links.push(Link {
                    line: line_of(close + 1),
                    target: target.to_string(),
                });
            }
            i = end + 1;
        }
    }
    links
}

/// The paragraphs outside fenced code blocks: runs of non-blank lines,
/// each with the 1-based number of its first line, joined by `\n`.
fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut last = 0;
    for (number, line) in prose_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((_, para)) if number == last + 1 => {
                para.push('\n');
                para.push_str(line);
            }
            _ => out.push((number, line.to_string())),
        }
        last = number;
    }
    out
}

/// The lines (1-based number, text) outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<(char, usize)> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|&c| c == m).count());
        match (fence, marker) {
            (None, Some(m)) if run >= 3 && indent <= 3 => fence = Some((m, run)),
            (Some((m, n)), Some(c)) if c == m && run >= n && trimmed[run..].trim().is_empty() => {
                fence = None
            }
            (None, _) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// `text` with the contents of its inline code spans (and their backticks)
/// replaced by spaces, so brackets in code are not taken for links.
fn blank_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&c| c == '`').count();
        // The closing run of the same length, if any.
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let r = chars[j..].iter().take_while(|&&c| c == '`').count();
                if r == run {
                    close = Some(j);
                    break;
                }
                j += r;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                out[i..j + run].fill(' ');
                i = j + run;
            }
            None => i += run,
        }
    }
    out.into_iter().collect()
}

/// The index of the bracket closing the one at `open`, counting nesting.
fn matching(chars: &[char], open: usize, left: char, right: char) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &c) in chars.iter().enumerate().skip(open) {
        if c == left {
            depth += 1;
        } else if c == right {
            depth -= 1;
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

/// Whether a target names a scheme (`https:`, `mailto:`, ...): not a path.
fn has_scheme(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_github() {
        assert_eq!(slug("Two commands"), "two-commands");
        assert_eq!(
            slug("Use it from an agent: `warden serve`"),
            "use-it-from-an-agent-warden-serve"
        );
        assert_eq!(slug("Limits, and containment"), "limits-and-containment");
        assert_eq!(
            slug("HTTP capabilities & egress"),
            "http-capabilities--egress"
        );
        assert_eq!(
            slug("snake_case and kebab-case"),
            "snake_case-and-kebab-case"
        );
        assert_eq!(slug("`[serve]` keys (v2.1)"), "serve-keys-v21");
    }

    #[test]
    fn headings_are_read_outside_code_and_repeats_numbered() {
        let text =
            "# Title\n\n## Notes ##\n```sh\n# not a heading\n```\n## Notes\n#not-one\n    # code\n";
        assert_eq!(heading_slugs(text), ["title", "notes", "notes-1"]);
    }

    #[test]
    fn links_are_relative_ones_outside_code() {
        let text = "\
See [the config](docs/configuration.md#limits) and [`[serve]`](docs/serve.md).
Not [web](https://example.com), [mail](mailto:a@b.c), nor `[code](x.md)`.
[Here](#two-commands) and ![img](docs/a.png \"title\") [ref][1] [plain] text.
```md
[fenced](nowhere.md)
```
[after](<ARCHITECTURE.md>) and [two
lines](docs/b.md#x), `[a code
span](no.md)`.
";
        let links = extract_links(text);
        let found: Vec<(usize, &str)> = links.iter().map(|l| (l.line, l.target.as_str())).collect();
        assert_eq!(
            found,
            [
                (1, "docs/configuration.md#limits"),
                (1, "docs/serve.md"),
                (3, "#two-commands"),
                (3, "docs/a.png"),
                (7, "ARCHITECTURE.md"),
                (8, "docs/b.md#x"),
            ]
        );
    }

    #[test]
    fn missing_files_and_anchors_are_named() {
        let root = std::env::temp_dir().join(format!("xtask-links-{}", std::process::id()));
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/page.md"), "# Page\n## A section\n").unwrap();
        let file = root.join("README.md");
        let mut cache = BTreeMap::new();
        let mut check = |t: &str| check_link(&root, &file, t, &mut cache);
        assert!(check("docs/page.md").is_ok());
        assert!(check("docs/page.md#a-section").is_ok());
        assert!(check("docs").is_ok());
        assert!(check("/docs/page.md#page").is_ok());
        assert!(check("docs/gone.md").unwrap_err().contains("no such file"));
        let err = check("docs/page.md#b-section").unwrap_err();
        assert!(err.contains("no heading with anchor #b-section"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
