//! Schemas: table-driven checks of every form, JSON Schema conversion both
//! ways, and property tests for the RTFS reader and printer.

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use warden_manifest::rtfs::{self, Value as Rtfs};
use warden_manifest::schema::{Field, Literal, TypeExpr};

/// A schema, values it accepts, and values it rejects with the expected error.
type Case<'a> = (&'a str, Vec<Json>, Vec<(Json, &'a str)>);

#[test]
fn every_form_accepts_and_rejects() {
    let table: Vec<Case> = vec![
        (
            ":int",
            vec![json!(1), json!(-5), json!(3.0)],
            vec![
                (json!(1.5), "$: expected :int, got a number with a fraction"),
                (json!("1"), "$: expected :int, got string"),
            ],
        ),
        (
            ":float",
            vec![json!(1.5), json!(2)],
            vec![(json!(true), "$: expected :float, got boolean")],
        ),
        (
            ":string",
            vec![json!(""), json!("x")],
            vec![(json!(null), "$: expected :string, got null")],
        ),
        (
            ":bool",
            vec![json!(false)],
            vec![(json!(0), "$: expected :bool, got number")],
        ),
        (
            ":nil",
            vec![json!(null)],
            vec![(json!({}), "$: expected :nil, got object")],
        ),
        (
            ":any",
            vec![json!(null), json!([1]), json!({"a": 1})],
            vec![],
        ),
        (
            ":int?",
            vec![json!(null), json!(3)],
            vec![(json!("3"), "$: expected :int, got string")],
        ),
        (
            "[:vector :string]",
            vec![json!([]), json!(["a", "b"])],
            vec![
                (json!(["a", 2]), "$[1]: expected :string, got number"),
                (json!("a"), "$: expected [:vector :string], got string"),
            ],
        ),
        (
            "[:tuple :string :int]",
            vec![json!(["a", 1])],
            vec![
                (json!(["a"]), "$: expected a tuple of 2 items, got 1"),
                (json!([1, 1]), "$[0]: expected :string, got number"),
            ],
        ),
        (
            "[:map [:name :string] [:age :int?]]",
            vec![
                json!({"name": "a"}),
                json!({"name": "a", "age": 3}),
                json!({"name": "a", "age": null, "extra": true}),
            ],
            vec![
                (
                    json!({"age": 3}),
                    "$.name: missing required key (expected :string)",
                ),
                (
                    json!({"name": "a", "age": "x"}),
                    "$.age: expected :int, got string",
                ),
                (json!([]), "$: expected a map, got array"),
            ],
        ),
        (
            "[:map {:name :string :expand :bool?}]",
            vec![json!({"name": "n"})],
            vec![(
                json!({"name": "n", "expand": 1}),
                "$.expand: expected :bool, got number",
            )],
        ),
        (
            "[:map [:items [:vector [:map [:name :string]]]]]",
            vec![json!({"items": [{"name": "a"}]})],
            vec![(
                json!({"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": 4}]}),
                "$.items[3].name: expected :string, got number",
            )],
        ),
        (
            "[:map [\"odd key\" :int]]",
            vec![json!({"odd key": 1})],
            vec![(
                json!({"odd key": "1"}),
                "$[\"odd key\"]: expected :int, got string",
            )],
        ),
        (
            "[:enum \"a\" \"b\" 3]",
            vec![json!("a"), json!(3)],
            vec![(json!("c"), "$: expected one of \"a\", \"b\", 3, got \"c\"")],
        ),
        (
            "[:union :int :string]",
            vec![json!(1), json!("x")],
            vec![(
                json!(true),
                "$: expected [:union :int :string], got boolean",
            )],
        ),
        (
            "[:optional [:vector :int]]",
            vec![json!(null), json!([1])],
            vec![(json!([null]), "$[0]: expected :int, got null")],
        ),
    ];
    for (schema, good, bad) in table {
        let t = TypeExpr::parse(schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
        for v in good {
            assert!(
                t.validate(&v).is_ok(),
                "{schema} should accept {v}: {:?}",
                t.validate(&v)
            );
        }
        for (v, want) in bad {
            assert_eq!(
                t.validate(&v).unwrap_err().to_string(),
                want,
                "{schema} on {v}"
            );
        }
    }
}

#[test]
fn bad_schemas_are_errors() {
    for (schema, needle) in [
        (":integr", "unknown type `:integr`"),
        ("[:vector]", "exactly one type"),
        ("[:mapp [:a :int]]", "unknown type constructor"),
        ("[:map [:a]]", "must be [:key type]"),
        ("[:map [:a :int] [:a :string]]", "appears twice"),
        ("[:enum]", "at least one value"),
        ("\"text\"", "a type is a keyword or a vector"),
        ("[:map [:a :int]", "unclosed"),
    ] {
        let err = TypeExpr::parse(schema).unwrap_err().to_string();
        assert!(err.contains(needle), "{schema}: {err}");
    }
}

#[test]
fn to_json_schema() {
    let t = TypeExpr::parse("[:map [:q :string] [:limit :int?] [:tags [:vector :string]] [:pair [:tuple :int :float]] [:mode [:enum \"a\" \"b\"]] [:x [:union :bool :nil]]]").unwrap();
    assert_eq!(
        t.to_json_schema(),
        json!({
            "type": "object",
            "properties": {
                "q": {"type": "string"},
                "limit": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "number"}], "minItems": 2, "maxItems": 2},
                "mode": {"enum": ["a", "b"]},
                "x": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
            },
            "required": ["q", "tags", "pair", "mode", "x"],
        })
    );
    assert_eq!(
        TypeExpr::parse("[:optional :string]")
            .unwrap()
            .to_json_schema(),
        json!({"anyOf": [{"type": "string"}, {"type": "null"}]})
    );
    assert_eq!(TypeExpr::Any.to_json_schema(), json!({}));
}

#[test]
fn from_json_schema_as_mcp_tools_publish_it() {
    let cases: Vec<(Json, &str, Vec<&str>)> = vec![
        (
            json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "number", "description": "x"}}, "required": ["a"], "title": "add"}),
            "[:map [:a :int] [:b :float?]]",
            vec![],
        ),
        (
            json!({"type": "array", "items": {"type": "string"}}),
            "[:vector :string]",
            vec![],
        ),
        (
            json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]}),
            "[:tuple :string :bool]",
            vec![],
        ),
        (
            json!({"enum": ["x", 2, null]}),
            "[:enum \"x\" 2 nil]",
            vec![],
        ),
        (json!({"const": "only"}), "[:enum \"only\"]", vec![]),
        (json!({"type": ["string", "null"]}), ":string?", vec![]),
        (
            json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
            "[:union :int :string]",
            vec![],
        ),
        (
            json!({"oneOf": [{"type": "integer"}, {"type": "null"}]}),
            ":int?",
            vec!["oneOf"],
        ),
        (
            json!({"type": "string", "nullable": true}),
            ":string?",
            vec![],
        ),
        (
            json!({"type": "string", "pattern": "^a"}),
            ":string",
            vec!["pattern"],
        ),
        (json!({"$ref": "#/$defs/x"}), ":any", vec!["$ref"]),
        (
            json!({"allOf": [{"type": "string"}]}),
            ":any",
            vec!["allOf"],
        ),
        (json!({}), ":any", vec![]),
        (
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            "[:map]",
            vec!["additional properties"],
        ),
        (
            json!({"type": "object", "properties": {"n": {"type": "object", "properties": {"deep": {"not": {}}}}}}),
            "[:map [:n {:optional true} [:map [:deep :any?]]]]",
            vec!["$.n.deep", "`not`"],
        ),
    ];
    for (schema, want, note_needles) in cases {
        let (t, notes) = TypeExpr::from_json_schema(&schema);
        assert_eq!(t.to_text(), want, "{schema}");
        for n in &note_needles {
            assert!(
                notes.iter().any(|note| note.contains(n)),
                "{schema}: notes {notes:?} lack {n}"
            );
        }
        if note_needles.is_empty() {
            assert!(notes.is_empty(), "{schema}: unexpected notes {notes:?}");
        }
    }
}

#[test]
fn json_schema_round_trip_keeps_the_type() {
    for s in [
        "[:map [:a :int] [:b :string?] [:c [:vector [:tuple :bool :nil]]]]",
        "[:union :int :string]",
        "[:enum \"a\" 1 true]",
        ":float?",
        ":any",
    ] {
        let t = TypeExpr::parse(s).unwrap();
        let (back, notes) = TypeExpr::from_json_schema(&t.to_json_schema());
        assert!(notes.is_empty(), "{s}: {notes:?}");
        assert_eq!(back, t, "{s}");
    }
}

fn arb_rtfs() -> impl Strategy<Value = Rtfs> {
    let key = "[a-zA-Z][a-zA-Z0-9_.?!*+/<>=-]{0,8}";
    let leaf = prop_oneof![
        Just(Rtfs::Nil),
        any::<bool>().prop_map(Rtfs::Bool),
        any::<i64>().prop_map(Rtfs::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Rtfs::Float),
        any::<String>().prop_map(Rtfs::String),
        key.prop_map(Rtfs::Keyword),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Rtfs::Vector),
            prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Rtfs::Map(
                m.into_iter().map(|(k, v)| (Rtfs::Keyword(k), v)).collect()
            )),
        ]
    })
}

fn arb_type() -> impl Strategy<Value = TypeExpr> {
    let leaf = prop_oneof![
        Just(TypeExpr::Int),
        Just(TypeExpr::Float),
        Just(TypeExpr::String),
        Just(TypeExpr::Bool),
        Just(TypeExpr::Nil),
        Just(TypeExpr::Any),
        prop::collection::vec(
            prop_oneof![
                any::<String>().prop_map(Literal::String),
                any::<i64>().prop_map(Literal::Int),
                any::<bool>().prop_map(Literal::Bool),
                Just(Literal::Nil)
            ],
            1..4
        )
        .prop_map(TypeExpr::Enum),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| TypeExpr::Optional(Box::new(t))),
            inner.clone().prop_map(|t| TypeExpr::Vector(Box::new(t))),
            prop::collection::vec(inner.clone(), 0..4).prop_map(TypeExpr::Tuple),
            prop::collection::vec(inner.clone(), 1..4).prop_map(TypeExpr::Union),
            prop::collection::btree_map("[a-z][a-z0-9-]{0,6}", (inner, any::<bool>()), 0..4)
                .prop_map(|m| {
                    TypeExpr::Map(
                        m.into_iter()
                            .map(|(name, (ty, optional))| Field { name, ty, optional })
                            .collect(),
                    )
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn print_then_read_is_the_identity(v in arb_rtfs()) {
        prop_assert_eq!(rtfs::read(&rtfs::print(&v)).unwrap(), v.clone());
        prop_assert_eq!(rtfs::read(&rtfs::print_compact(&v)).unwrap(), v);
    }

    #[test]
    fn schema_print_then_parse_is_the_identity(t in arb_type()) {
        let text = t.to_text();
        prop_assert_eq!(TypeExpr::parse(&text).unwrap(), t.clone(), "{}", text);
        prop_assert_eq!(TypeExpr::parse(&rtfs::print(&t.to_rtfs())).unwrap(), t);
    }

    #[test]
    fn reader_never_panics_on_arbitrary_text(s in any::<String>()) {
        let _ = rtfs::read_all(&s);
        let _ = TypeExpr::parse(&s);
    }

    #[test]
    fn reader_never_panics_on_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..256)) {
        let s = String::from_utf8_lossy(&b);
        let _ = rtfs::read_all(&s);
        let _ = warden_manifest::snapshot::snapshot_from_rtfs(&s);
    }

    #[test]
    fn reader_never_panics_on_rtfs_like_text(s in "[\\[\\]{}():\"\\\\a-z0-9 .;#\\n-]{0,64}") {
        let _ = rtfs::read_all(&s);
        let _ = warden_manifest::snapshot::snapshot_from_rtfs(&s);
    }
}

/// Local `$ref`s (nested pydantic models) are resolved; recursive ones
/// become `:any` with a note.
#[test]
fn local_refs_are_resolved() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "home": {"$ref": "#/$defs/Address", "description": "where"},
            "past": {"type": "array", "items": {"$ref": "#/$defs/Address"}},
        },
        "required": ["name", "home"],
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "zip": {"type": "integer"}},
                "required": ["street"],
            }
        }
    });
    let (t, notes) = TypeExpr::from_json_schema(&schema);
    assert!(notes.is_empty(), "{notes:?}");
    assert!(t
        .validate(&json!({"name": "a", "home": {"street": "s", "zip": 1}}))
        .is_ok());
    let err = t
        .validate(&json!({"name": "a", "home": {"zip": "x"}}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("home"), "{err}");
    assert!(t
        .validate(&json!({"name": "a", "home": {"street": "s"}, "past": [{"street": 1}]}))
        .is_err());
    let recursive = json!({
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}
    });
    let (t, notes) = TypeExpr::from_json_schema(&recursive);
    assert!(notes.iter().any(|n| n.contains("recursive")), "{notes:?}");
    assert!(t.validate(&json!({"next": {"next": 5}})).is_ok());
    assert!(
        t.validate(&json!({"next": 5})).is_ok(),
        "the recursive part is :any"
    );
}

/// The next number of a xorshift sequence.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A value for `t` from `seed`: mostly one that fits, sometimes (one step
/// in six) one that does not, at any depth.
fn sample(t: &TypeExpr, seed: &mut u64) -> Json {
    if next(seed) % 6 == 0 {
        let odd = [
            json!(null),
            json!(true),
            json!(7),
            json!(-3),
            json!(2.5),
            json!(4.0),
            json!(18446744073709551615u64),
            json!("x"),
            json!([]),
            json!({}),
        ];
        return odd[(next(seed) % odd.len() as u64) as usize].clone();
    }
    match t {
        TypeExpr::Int => json!((next(seed) % 100) as i64 - 50),
        TypeExpr::Float => json!((next(seed) % 1000) as f64 / 8.0),
        TypeExpr::String => json!(format!("s{}", next(seed) % 10)),
        TypeExpr::Bool => json!(next(seed) % 2 == 0),
        TypeExpr::Nil => Json::Null,
        TypeExpr::Any => json!({"any": [1, "two", null]}),
        TypeExpr::Optional(_) if next(seed) % 3 == 0 => Json::Null,
        TypeExpr::Optional(inner) => sample(inner, seed),
        TypeExpr::Vector(inner) => (0..next(seed) % 4).map(|_| sample(inner, seed)).collect(),
        TypeExpr::Tuple(ts) => ts.iter().map(|t| sample(t, seed)).collect(),
        TypeExpr::Union(ts) => sample(&ts[(next(seed) % ts.len() as u64) as usize], seed),
        TypeExpr::Enum(ls) => match &ls[(next(seed) % ls.len() as u64) as usize] {
            Literal::String(s) => json!(s),
            Literal::Int(n) => json!(n),
            Literal::Float(f) => json!(f),
            Literal::Bool(b) => json!(b),
            Literal::Nil => Json::Null,
        },
        TypeExpr::Map(fields) => {
            let mut m = serde_json::Map::new();
            for f in fields {
                match next(seed) % 5 {
                    0 => {}
                    1 if f.optional => {
                        m.insert(f.name.clone(), Json::Null);
                    }
                    _ => {
                        m.insert(f.name.clone(), sample(&f.ty, seed));
                    }
                }
            }
            if next(seed) % 4 == 0 {
                m.insert("extra key".into(), json!([1, {"deep": true}]));
            }
            Json::Object(m)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Checking text while reading it decides exactly as checking the
    /// parsed value, with the same error, compact or pretty-printed.
    #[test]
    fn checking_text_agrees_with_checking_the_value(t in arb_type(), seed in 1u64..) {
        let mut seed = seed;
        let v = sample(&t, &mut seed);
        let expected = t.validate(&v);
        prop_assert_eq!(t.validate_text(&v.to_string()), expected.clone(), "{} on {}", t.to_text(), v);
        prop_assert_eq!(t.validate_text(&serde_json::to_string_pretty(&v).unwrap()), expected);
    }
}

#[test]
fn checking_text_reports_what_is_not_json_and_keeps_the_last_of_a_repeated_key() {
    let t = TypeExpr::parse("[:map [:n :int]]").unwrap();
    for bad in ["", "{", "{\"n\": 1} trailing", "{\"n\": 1}{}", "nul"] {
        let e = t.validate_text(bad).unwrap_err();
        assert!(e.to_string().starts_with("$: not JSON"), "{bad}: {e}");
    }
    // As a parsed object keeps it: the last value given for a key.
    assert!(t.validate_text(r#"{"n": "one", "n": 1}"#).is_ok());
    assert_eq!(
        t.validate_text(r#"{"n": 1, "n": "one"}"#)
            .unwrap_err()
            .to_string(),
        "$.n: expected :int, got string"
    );
}
