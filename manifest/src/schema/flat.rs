//! The quick check of the common call's JSON text: one object whose values
//! are scalars (strings without escapes, integers, `true`, `false`,
//! `null`), checked against a `[:map ...]` in one pass over the bytes.
//! It only ever answers "fits"; anything else (an escape, a nested value, a
//! fraction, a mismatch, text that is not JSON) is left to the full reader
//! in `text.rs`, which decides and, on a misfit, to `TypeExpr::validate`,
//! which names it. So a yes here is a yes there: the property test below
//! holds it to that.

use super::text::Scalar;
use super::TypeExpr;

/// Most fields of a `[:map ...]` checked here (one bit each).
const MAX_FIELDS: usize = 128;

/// `Some(())` when `text` is one flat JSON object that fits `ty`; `None`
/// when it does not, or when this check cannot tell.
pub(super) fn fits(ty: &TypeExpr, text: &str) -> Option<()> {
    let TypeExpr::Map(fields) = ty.without_optional() else {
        return None;
    };
    if fields.len() > MAX_FIELDS {
        return None;
    }
    let mut r = Reader { text, at: 0 };
    r.expect(b'{')?;
    let mut seen = 0u128;
    if r.peek()? != b'}' {
        loop {
            let key = r.string()?;
            r.expect(b':')?;
            let value = r.scalar()?;
            if let Some(i) = fields.iter().position(|f| f.name == key) {
                let f = &fields[i];
                let fits = (f.optional && matches!(value, Scalar::Null)) || value.fits(&f.ty);
                if !fits {
                    return None;
                }
                seen |= 1 << i;
            }
            if r.peek()? == b'}' {
                break;
            }
            r.expect(b',')?;
        }
    }
    r.expect(b'}')?;
    r.skip_ws();
    if r.at != r.bytes().len() {
        return None;
    }
    let missing = fields
        .iter()
        .enumerate()
        .any(|(i, f)| !f.optional && seen & (1 << i) == 0);
    (!missing).then_some(())
}

/// A cursor over the text's bytes.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not taken.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.at).copied()
    }

    /// Takes `byte` after whitespace.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes or control characters, after whitespace.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match *self.bytes().get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        // Both ends are at a `"`, so on character boundaries.
        let s = self.text.get(start..self.at)?;
        self.at += 1;
        Some(s)
    }

    /// A scalar value after whitespace: as `serde_json` reads it, or `None`
    /// for anything else.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        let word = |r: &mut Self, w: &[u8], s: Scalar<'a>| {
            r.bytes()[r.at..].starts_with(w).then(|| {
                r.at += w.len();
                s
            })
        };
        match self.peek()? {
            b'"' => self.string().map(Scalar::Str),
            b't' => word(self, b"true", Scalar::Bool(true)),
            b'f' => word(self, b"false", Scalar::Bool(false)),
            b'n' => word(self, b"null", Scalar::Null),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    /// An integer (`-?(0|[1-9][0-9]*)`, not followed by a fraction or an
    /// exponent) whose digits fit in 64 bits, read as `serde_json` reads it.
    fn integer(&mut self) -> Option<Scalar<'a>> {
        let negative = self.bytes()[self.at] == b'-';
        let start = self.at + usize::from(negative);
        let mut end = start;
        while self.bytes().get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let digits = &self.bytes()[start..end];
        if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.bytes().get(end) {
            return None;
        }
        let magnitude: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        self.at = end;
        if !negative {
            return Some(Scalar::U64(magnitude));
        }
        // As `serde_json` reads it: `-0`, and what is below `i64::MIN`,
        // as a float.
        let n = (magnitude as i64).wrapping_neg();
        Some(if n >= 0 {
            Scalar::F64(-(magnitude as f64))
        } else {
            Scalar::I64(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ty(text: &str) -> TypeExpr {
        TypeExpr::parse(text).expect("a type")
    }

    /// Whether the full path (parse, then validate) accepts `text`.
    fn full(ty: &TypeExpr, text: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| ty.validate(&v).is_ok())
    }

    #[test]
    fn the_common_shapes_are_decided_here() {
        let t = ty("[:map [:name :string] [:n {:optional true} :int] [:ok :bool?]]");
        for text in [
            r#"{"name":"Ada"}"#,
            r#" { "name" : "Ada" , "n" : -12 , "ok" : null } "#,
            r#"{"name":"Ada","other":"x"}"#,
            r#"{"name":"Ada","n":null,"extra":true}"#,
            r#"{"name":"x","name":"y"}"#,
        ] {
            assert_eq!(fits(&t, text), Some(()), "{text}");
            assert!(full(&t, text), "{text}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_the_full_reader() {
        let t = ty("[:map [:name :string] [:n {:optional true} :int]]");
        for text in [
            r#"{"name":"A\"da"}"#,
            r#"{"name":"Ada","n":1.0}"#,
            r#"{"name":"Ada","n":1e2}"#,
            r#"{"name":"Ada","n":01}"#,
            r#"{"name":"Ada","x":{}}"#,
            r#"{"name":"Ada","n":99999999999999999999}"#,
            r#"{"name":"Ada",}"#,
            r#"{"name":"Ada"} x"#,
            r#"{"n":1}"#,
            "{\"name\":\"a\u{1}b\"}",
            r#"{"name":1}"#,
        ] {
            assert_eq!(fits(&t, text), None, "{text}");
        }
    }

    /// Pieces that make JSON, almost-JSON and not JSON when strung together.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\n",
            "\"name\"",
            "\"n\"",
            "\"ok\"",
            "\"x\"",
            "\"A\\\"\"",
            "\"é\"",
            "\"\"",
            "0",
            "-0",
            "7",
            "-3",
            "01",
            "1.5",
            "2e3",
            "-",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "true",
            "false",
            "null",
            "nul",
            "\"a\u{1}\"",
            "\"red\"",
        ])
    }

    fn types() -> impl Strategy<Value = TypeExpr> {
        prop::sample::select(vec![
            "[:map [:name :string]]",
            "[:map [:name :string] [:n :int?] [:ok {:optional true} :bool]]",
            "[:map [:n :float] [:x :any]]",
            "[:map [:n [:enum 7 -3 0]] [:name [:enum \"red\" \"é\"]]]",
            "[:map [:ok :nil] [:n :int]]",
            "[:optional [:map [:x :string]]]",
            "[:map]",
        ])
        .prop_map(ty)
    }

    /// A well-formed object of the pieces above, so that most cases get
    /// past the first byte.
    fn object() -> impl Strategy<Value = String> {
        let value = prop::sample::select(vec![
            "0",
            "-0",
            "7",
            "-3",
            "1.5",
            "true",
            "false",
            "null",
            "\"red\"",
            "\"é\"",
            "\"\"",
            "\"A\\\"\"",
            "[]",
            "{}",
            "18446744073709551615",
            "-9223372036854775808",
        ]);
        let key = prop::sample::select(vec!["name", "n", "ok", "x"]);
        prop::collection::vec((key, value), 0..5).prop_map(|members| {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever the text: a yes here is a yes from the full path.
        #[test]
        fn a_yes_here_is_a_yes_there(
            t in types(),
            text in prop_oneof![
                prop::collection::vec(piece(), 0..14).prop_map(|p| p.concat()),
                object(),
            ],
        ) {
            if fits(&t, &text).is_some() {
                prop_assert!(full(&t, &text), "{} said to fit {}", text, t.to_text());
            }
        }

        /// And on well-formed flat objects it answers as the full reader
        /// does (it decides them, rather than passing them on).
        #[test]
        fn flat_objects_are_decided(t in types(), text in object()) {
            let flat = !text[1..].contains(['[', '{', '\\', '.']);
            if flat {
                let read = super::super::text::fits(&t, &text);
                prop_assert_eq!(fits(&t, &text).is_some(), read, "{}", text);
            }
        }
    }
}
