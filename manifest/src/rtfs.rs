//! RTFS data syntax: a reader and a deterministic pretty printer for the
//! data forms capability snapshots use — keywords, strings, integers, floats,
//! booleans, `nil`, vectors, maps and `;` comments (commas are whitespace).
//!
//! ```
//! use warden_manifest::rtfs::{read, print, Value};
//! let v = read(r#"{:id "text.case" :tags [:a :b] ; a comment
//!                  :limit 3}"#).unwrap();
//! assert_eq!(v.get("limit"), Some(&Value::Int(3)));
//! assert_eq!(read(&print(&v)).unwrap(), v);
//! ```

use std::fmt::Write as _;

/// One RTFS datum.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A float (`1.5`, `1e3`, `##Inf`, `##-Inf`, `##NaN`).
    Float(f64),
    /// A string.
    String(String),
    /// A keyword, stored without its leading `:` (`:string?` is `string?`).
    Keyword(String),
    /// `[a b c]`
    Vector(Vec<Value>),
    /// `{k v ...}`, in the order written.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// A keyword value.
    pub fn kw(name: &str) -> Value {
        Value::Keyword(name.to_string())
    }

    /// In a map, the value under the keyword (or string) key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_key() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The name of a keyword or the text of a string, for use as a key.
    pub fn as_key(&self) -> Option<&str> {
        match self {
            Value::Keyword(k) | Value::String(k) => Some(k),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Keyword(_) => "keyword",
            Value::Vector(_) => "vector",
            Value::Map(_) => "map",
        }
    }
}

/// A syntax error with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ReadError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Deepest nesting the reader accepts (keeps hostile input from exhausting the stack).
const MAX_DEPTH: usize = 256;

struct Reader<'a> {
    src: &'a str,
    pos: usize,
}

/// Reads exactly one datum (surrounded by whitespace and comments only).
pub fn read(src: &str) -> Result<Value, ReadError> {
    let mut all = read_all(src)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(ReadError {
            line: 1,
            column: 1,
            message: "no value in input".into(),
        }),
        _ => {
            let mut r = Reader { src, pos: 0 };
            r.skip_ws();
            r.value(0)?;
            r.skip_ws();
            Err(r.error("more than one value in input"))
        }
    }
}

/// Reads every datum in `src`, in order.
pub fn read_all(src: &str) -> Result<Vec<Value>, ReadError> {
    let mut r = Reader { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        r.skip_ws();
        if r.pos >= r.src.len() {
            return Ok(out);
        }
        out.push(r.value(0)?);
    }
}

fn is_symbol_char(c: char) -> bool {
    c.is_alphanumeric() || "-_.?!*+/<>=&%$'#".contains(c)
}

impl<'a> Reader<'a> {
    fn error(&self, message: impl Into<String>) -> ReadError {
        let before = &self.src[..self.pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        ReadError {
            line,
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ReadError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_DEPTH}")));
        }
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of input"));
        };
        match c {
            '[' => {
                self.bump();
                let items = self.seq(']', depth)?;
                Ok(Value::Vector(items))
            }
            '{' => {
                let start = self.pos;
                self.bump();
                let items = self.seq('}', depth)?;
                if items.len() % 2 != 0 {
                    self.pos = start;
                    return Err(self.error("a map needs an even number of forms (key value pairs)"));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if pairs.iter().any(|(existing, _)| *existing == k) {
                        self.pos = start;
                        return Err(self.error(format!("duplicate map key {}", print_compact(&k))));
                    }
                    pairs.push((k, v));
                }
                Ok(Value::Map(pairs))
            }
            ']' | '}' | ')' => Err(self.error(format!("unexpected `{c}`"))),
            '(' => Err(self.error("lists are not data; use a vector `[...]`")),
            '"' => self.string(),
            ':' => {
                self.bump();
                let start = self.pos;
                while self.peek().is_some_and(is_symbol_char) || self.peek() == Some(':') {
                    self.bump();
                }
                if self.pos == start {
                    return Err(self.error("empty keyword"));
                }
                Ok(Value::Keyword(self.src[start..self.pos].to_string()))
            }
            _ => self.atom(),
        }
    }

    fn seq(&mut self, close: char, depth: usize) -> Result<Vec<Value>, ReadError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => return Err(self.error(format!("unclosed form: expected `{close}`"))),
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.value(depth + 1)?),
            }
        }
    }

    fn string(&mut self) -> Result<Value, ReadError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                self.pos = start;
                return Err(self.error("unterminated string"));
            };
            match c {
                '"' => return Ok(Value::String(out)),
                '\\' => {
                    let esc_at = self.pos - 1;
                    let e = self
                        .bump()
                        .ok_or_else(|| self.error("unterminated string"))?;
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'u' => {
                            let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == 4);
                            match code.and_then(char::from_u32) {
                                Some(ch) => out.push(ch),
                                None => {
                                    self.pos = esc_at;
                                    return Err(
                                        self.error(format!("invalid unicode escape `\\u{hex}`"))
                                    );
                                }
                            }
                        }
                        other => {
                            self.pos = esc_at;
                            return Err(self.error(format!("invalid escape `\\{other}`")));
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn atom(&mut self) -> Result<Value, ReadError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| is_symbol_char(c) || c == ':') {
            self.bump();
        }
        if self.pos == start {
            let c = self.peek().unwrap_or(' ');
            return Err(self.error(format!("unexpected character `{c}`")));
        }
        let text = &self.src[start..self.pos];
        let at_start = |r: &mut Self| r.pos = start;
        match text {
            "nil" => return Ok(Value::Nil),
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            "##Inf" => return Ok(Value::Float(f64::INFINITY)),
            "##-Inf" => return Ok(Value::Float(f64::NEG_INFINITY)),
            "##NaN" => return Ok(Value::Float(f64::NAN)),
            _ => {}
        }
        let first = text.chars().next().unwrap_or(' ');
        let numeric = first.is_ascii_digit()
            || ((first == '-' || first == '+')
                && text[1..].starts_with(|c: char| c.is_ascii_digit()));
        if numeric {
            let is_float = text.contains(['.', 'e', 'E']);
            if !is_float {
                return text.parse::<i64>().map(Value::Int).map_err(|_| {
                    at_start(self);
                    self.error(format!("integer `{text}` is out of range or malformed"))
                });
            }
            let well_formed = text
                .trim_start_matches(['-', '+'])
                .chars()
                .all(|c| c.is_ascii_digit() || "._eE+-".contains(c));
            return match text.parse::<f64>() {
                Ok(f) if well_formed && f.is_finite() => Ok(Value::Float(f)),
                _ => {
                    at_start(self);
                    Err(self.error(format!("malformed number `{text}`")))
                }
            };
        }
        at_start(self);
        Err(self.error(format!("unexpected symbol `{text}`: data may hold keywords (`:{text}`), strings, numbers, booleans and nil")))
    }
}

/// Prints `v` on one line.
pub fn print_compact(v: &Value) -> String {
    let mut out = String::new();
    compact(v, &mut out);
    out
}

fn compact(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&float_text(*f)),
        Value::String(s) => string_text(s, out),
        Value::Keyword(k) => {
            out.push(':');
            out.push_str(k);
        }
        Value::Vector(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                compact(item, out);
            }
            out.push(']');
        }
        Value::Map(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                compact(k, out);
                out.push(' ');
                compact(v, out);
            }
            out.push('}');
        }
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "##NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "##Inf".into()
        } else {
            "##-Inf".into()
        }
    } else {
        // `{:?}` is the shortest text that reads back to the same f64 and
        // always marks a float (`1.0`, `1e100`).
        format!("{f:?}")
    }
}

fn string_text(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const WIDTH: usize = 80;

/// Prints `v` readably: maps of two or more entries put one entry a line,
/// aligned under the first key; anything that fits on its line stays inline.
pub fn print(v: &Value) -> String {
    let mut out = String::new();
    pretty(v, 0, &mut out);
    out
}

/// Whether `v` holds a map of two or more entries anywhere (such maps are
/// always printed one entry a line).
fn has_multi_entry_map(v: &Value) -> bool {
    match v {
        Value::Map(p) => {
            p.len() >= 2
                || p.iter()
                    .any(|(k, v)| has_multi_entry_map(k) || has_multi_entry_map(v))
        }
        Value::Vector(items) => items.iter().any(has_multi_entry_map),
        _ => false,
    }
}

fn pretty(v: &Value, indent: usize, out: &mut String) {
    let inline = print_compact(v);
    if !has_multi_entry_map(v) && indent + inline.chars().count() <= WIDTH {
        out.push_str(&inline);
        return;
    }
    match v {
        Value::Vector(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent + 1));
                }
                pretty(item, indent + 1, out);
            }
            out.push(']');
        }
        Value::Map(pairs) => {
            out.push('{');
            for (i, (k, val)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent + 1));
                }
                let key = print_compact(k);
                out.push_str(&key);
                out.push(' ');
                pretty(val, indent + 1 + key.chars().count() + 1, out);
            }
            out.push('}');
        }
        _ => out.push_str(&inline),
    }
}

/// A map key as a keyword where it can be one (`:base-url`), else a string.
pub fn key_to_rtfs(k: &str) -> Value {
    let keyword_safe = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_alphanumeric() || "-_.?!*+/<>=".contains(c));
    if keyword_safe {
        Value::Keyword(k.to_string())
    } else {
        Value::String(k.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form() {
        let v = read(r#"{:a nil :b true :c false :d -12 :e 1.5 :f 2e3 :g "x\"y\n\u00e9" :h :k? :i [1 [2]] :j {}} ; end"#).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Nil));
        assert_eq!(v.get("b"), Some(&Value::Bool(true)));
        assert_eq!(v.get("d"), Some(&Value::Int(-12)));
        assert_eq!(v.get("e"), Some(&Value::Float(1.5)));
        assert_eq!(v.get("f"), Some(&Value::Float(2000.0)));
        assert_eq!(v.get("g"), Some(&Value::String("x\"y\né".into())));
        assert_eq!(v.get("h"), Some(&Value::kw("k?")));
        assert_eq!(v.get("j"), Some(&Value::Map(vec![])));
    }

    #[test]
    fn errors_name_line_and_column() {
        for (src, line, column, needle) in [
            ("{:a 1\n :b}", 1, 1, "even number"),
            ("[1 2", 1, 5, "unclosed"),
            ("\n  \"abc", 2, 3, "unterminated"),
            ("[1 foo]", 1, 4, "unexpected symbol `foo`"),
            ("{:a 1 :a 2}", 1, 1, "duplicate map key :a"),
            ("99999999999999999999", 1, 1, "out of range"),
            ("\"\\q\"", 1, 2, "invalid escape"),
            ("]", 1, 1, "unexpected `]`"),
            ("1 2", 1, 3, "more than one"),
            ("", 1, 1, "no value"),
            (":", 1, 2, "empty keyword"),
            ("1.2.3", 1, 1, "malformed number"),
        ] {
            let e = read(src).unwrap_err();
            assert_eq!((e.line, e.column), (line, column), "{src:?}: {e}");
            assert!(e.message.contains(needle), "{src:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = "[".repeat(100_000);
        assert!(read(&src).unwrap_err().message.contains("nesting"));
    }

    #[test]
    fn printing_is_pretty_and_reads_back() {
        let v = read(r#"{:id "x" :name "y" :input-schema [:map [:a :int]] :metadata {:mcp {:requires-session "auto" :server-url "http://h"}}}"#).unwrap();
        let text = print(&v);
        assert_eq!(
            text,
            "{:id \"x\"\n :name \"y\"\n :input-schema [:map [:a :int]]\n :metadata {:mcp {:requires-session \"auto\"\n                  :server-url \"http://h\"}}}"
        );
        assert_eq!(read(&text).unwrap(), v);
        for f in [0.1, 1.0, -2.5e-300, 1e100, f64::MAX] {
            assert_eq!(read(&print(&Value::Float(f))).unwrap(), Value::Float(f));
        }
    }
}
