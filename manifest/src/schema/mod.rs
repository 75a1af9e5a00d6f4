//! Schemas as RTFS type expressions: parsing, printing, validation of JSON
//! values with exact error paths, and conversion to and from JSON Schema.
//!
//! | form | meaning |
//! |---|---|
//! | `:int :float :string :bool :nil :any` | primitives (`:float` accepts integers too) |
//! | `:T?` | `:T` or nil; as a map field, an optional field |
//! | `[:vector T]` | array of `T` |
//! | `[:tuple T ...]` | array of exactly those types |
//! | `[:map [:k T] ...]`, `[:map {:k T ...}]` | object with those fields (others allowed) |
//! | `[:enum v ...]` | one of the literal values (strings, numbers, booleans, nil) |
//! | `[:union T ...]` (or `[:or T ...]`) | any one of the types |
//! | `[:optional T]` | `T` or nil |
//!
//! ```
//! use warden_manifest::schema::TypeExpr;
//! let s = TypeExpr::parse("[:map [:items [:vector [:map [:name :string]]]]]").unwrap();
//! let err = s.validate(&serde_json::json!({"items": [{"name": "a"}, {"name": 3}]})).unwrap_err();
//! assert_eq!(err.to_string(), "$.items[1].name: expected :string, got number");
//! ```

mod flat;
mod text;

use crate::rtfs::{self, Value as Rtfs};
use serde_json::{json, Map, Value as Json};
use std::fmt;

/// A type expression.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    /// `:int`
    Int,
    /// `:float` (integers are accepted)
    Float,
    /// `:string`
    String,
    /// `:bool`
    Bool,
    /// `:nil`
    Nil,
    /// `:any`
    Any,
    /// `:T?` or `[:optional T]`: `T` or nil.
    Optional(Box<TypeExpr>),
    /// `[:vector T]`
    Vector(Box<TypeExpr>),
    /// `[:tuple T ...]`
    Tuple(Vec<TypeExpr>),
    /// `[:map [:k T] ...]`
    Map(Vec<Field>),
    /// `[:enum v ...]`
    Enum(Vec<Literal>),
    /// `[:union T ...]`
    Union(Vec<TypeExpr>),
}

/// A field of a `[:map ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Key name.
    pub name: String,
    /// Its type.
    pub ty: TypeExpr,
    /// Whether the key may be absent (written `:T?` or `[:k {:optional true} T]`).
    pub optional: bool,
}

/// A literal in an `[:enum ...]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string.
    String(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// nil
    Nil,
}

impl Literal {
    fn to_json(&self) -> Json {
        match self {
            Literal::String(s) => json!(s),
            Literal::Int(i) => json!(i),
            Literal::Float(f) => json!(f),
            Literal::Bool(b) => json!(b),
            Literal::Nil => Json::Null,
        }
    }
    fn to_rtfs(&self) -> Rtfs {
        match self {
            Literal::String(s) => Rtfs::String(s.clone()),
            Literal::Int(i) => Rtfs::Int(*i),
            Literal::Float(f) => Rtfs::Float(*f),
            Literal::Bool(b) => Rtfs::Bool(*b),
            Literal::Nil => Rtfs::Nil,
        }
    }
    /// Whether `v` is this literal; an `:int` literal also matches a float
    /// of the same value. One rule for a parsed value and for a scalar
    /// read from text ([`text`]).
    fn matches(&self, v: &impl ScalarView) -> bool {
        match self {
            Literal::String(a) => v.as_str() == Some(a.as_str()),
            Literal::Bool(a) => v.as_bool() == Some(*a),
            Literal::Nil => v.is_null(),
            Literal::Int(a) => v.as_i64() == Some(*a) || v.as_f64() == Some(*a as f64),
            Literal::Float(a) => v.as_f64() == Some(*a),
        }
    }
}

/// What [`Literal::matches`] reads of a scalar.
trait ScalarView {
    fn as_str(&self) -> Option<&str>;
    fn as_bool(&self) -> Option<bool>;
    fn is_null(&self) -> bool;
    fn as_i64(&self) -> Option<i64>;
    fn as_f64(&self) -> Option<f64>;
}

impl ScalarView for Json {
    fn as_str(&self) -> Option<&str> {
        Json::as_str(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Json::as_bool(self)
    }
    fn is_null(&self) -> bool {
        Json::is_null(self)
    }
    fn as_i64(&self) -> Option<i64> {
        Json::as_i64(self)
    }
    fn as_f64(&self) -> Option<f64> {
        Json::as_f64(self)
    }
}

/// A schema that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema: {0}")]
pub struct SchemaError(pub String);

/// A value that does not match its schema: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// JSONPath-like location: `$`, `$.items[3].name`, `$["odd key"]`.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

/// Why JSON text does not fit a type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The text is not one JSON value.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// It is, and the value does not fit.
    #[error(transparent)]
    Invalid(ValidationError),
}

/// Whether a JSON float counts as an `:int`: whole, and exactly
/// representable (below 2^53).
fn is_whole(f: f64) -> bool {
    f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// Where a value sits in the document being checked: a chain of steps on
/// the stack, written out as text only when a check fails.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// `$`, `$.items[3].name`, `$["odd key"]`.
    fn render(&self) -> String {
        match self {
            Path::Root => "$".to_string(),
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
            Path::Key(parent, key) => push_key(&parent.render(), key),
        }
    }
}

/// `path` followed by `key`: `path.key`, or `path["odd key"]`.
fn push_key(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Json::String(key.to_string()))
    }
}

impl TypeExpr {
    /// Parses a type expression from RTFS text.
    pub fn parse(text: &str) -> Result<TypeExpr, SchemaError> {
        let v = rtfs::read(text).map_err(|e| SchemaError(e.to_string()))?;
        TypeExpr::from_rtfs(&v)
    }

    /// Parses a type expression from an RTFS value.
    pub fn from_rtfs(v: &Rtfs) -> Result<TypeExpr, SchemaError> {
        match v {
            Rtfs::Keyword(k) => {
                if let Some(base) = k.strip_suffix('?') {
                    return Ok(TypeExpr::Optional(Box::new(primitive(base)?)));
                }
                primitive(k)
            }
            Rtfs::Vector(items) => {
                let Some(Rtfs::Keyword(head)) = items.first() else {
                    return Err(SchemaError(format!(
                        "`{}`: a compound type starts with a keyword such as :map",
                        rtfs::print_compact(v)
                    )));
                };
                let args = &items[1..];
                match head.as_str() {
                    "vector" => match args {
                        [t] => Ok(TypeExpr::Vector(Box::new(TypeExpr::from_rtfs(t)?))),
                        _ => Err(SchemaError("[:vector T] takes exactly one type".into())),
                    },
                    "optional" | "maybe" => match args {
                        [t] => Ok(TypeExpr::Optional(Box::new(TypeExpr::from_rtfs(t)?))),
                        _ => Err(SchemaError("[:optional T] takes exactly one type".into())),
                    },
                    "tuple" => Ok(TypeExpr::Tuple(args.iter().map(TypeExpr::from_rtfs).collect::<Result<_, _>>()?)),
                    "union" | "or" => {
                        if args.is_empty() {
                            return Err(SchemaError("[:union ...] needs at least one type".into()));
                        }
                        Ok(TypeExpr::Union(args.iter().map(TypeExpr::from_rtfs).collect::<Result<_, _>>()?))
                    }
                    "enum" => {
                        if args.is_empty() {
                            return Err(SchemaError("[:enum ...] needs at least one value".into()));
                        }
                        args.iter()
                            .map(|a| match a {
                                Rtfs::String(s) => Ok(Literal::String(s.clone())),
                                Rtfs::Keyword(k) => Ok(Literal::String(k.clone())),
                                Rtfs::Int(i) => Ok(Literal::Int(*i)),
                                Rtfs::Float(f) => Ok(Literal::Float(*f)),
                                Rtfs::Bool(b) => Ok(Literal::Bool(*b)),
                                Rtfs::Nil => Ok(Literal::Nil),
                                other => Err(SchemaError(format!("[:enum ...] values must be literals, got {}", other.kind()))),
                            })
                            .collect::<Result<_, _>>()
                            .map(TypeExpr::Enum)
                    }
                    "map" => parse_map(args),
                    other => Err(SchemaError(format!(
                        "unknown type constructor `:{other}` (expected :vector, :tuple, :map, :enum, :union, :optional)"
                    ))),
                }
            }
            other => Err(SchemaError(format!(
                "a type is a keyword or a vector, got {} `{}`",
                other.kind(),
                rtfs::print_compact(other)
            ))),
        }
    }

    /// The type as an RTFS value.
    pub fn to_rtfs(&self) -> Rtfs {
        let kw = Rtfs::kw;
        match self {
            TypeExpr::Int => kw("int"),
            TypeExpr::Float => kw("float"),
            TypeExpr::String => kw("string"),
            TypeExpr::Bool => kw("bool"),
            TypeExpr::Nil => kw("nil"),
            TypeExpr::Any => kw("any"),
            TypeExpr::Optional(t) => match t.as_ref() {
                p @ (TypeExpr::Int
                | TypeExpr::Float
                | TypeExpr::String
                | TypeExpr::Bool
                | TypeExpr::Any) => {
                    let Rtfs::Keyword(k) = p.to_rtfs() else {
                        unreachable!()
                    };
                    Rtfs::Keyword(format!("{k}?"))
                }
                other => Rtfs::Vector(vec![kw("optional"), other.to_rtfs()]),
            },
            TypeExpr::Vector(t) => Rtfs::Vector(vec![kw("vector"), t.to_rtfs()]),
            TypeExpr::Tuple(ts) => Rtfs::Vector(
                std::iter::once(kw("tuple"))
                    .chain(ts.iter().map(TypeExpr::to_rtfs))
                    .collect(),
            ),
            TypeExpr::Union(ts) => Rtfs::Vector(
                std::iter::once(kw("union"))
                    .chain(ts.iter().map(TypeExpr::to_rtfs))
                    .collect(),
            ),
            TypeExpr::Enum(ls) => Rtfs::Vector(
                std::iter::once(kw("enum"))
                    .chain(ls.iter().map(Literal::to_rtfs))
                    .collect(),
            ),
            TypeExpr::Map(fields) => {
                let mut items = vec![kw("map")];
                for f in fields {
                    let ty = if f.optional {
                        match &f.ty {
                            // `:T?` as a field means "optional field of type T".
                            t @ (TypeExpr::Int
                            | TypeExpr::Float
                            | TypeExpr::String
                            | TypeExpr::Bool
                            | TypeExpr::Any) => TypeExpr::Optional(Box::new(t.clone())).to_rtfs(),
                            t => {
                                items.push(Rtfs::Vector(vec![
                                    field_key(&f.name),
                                    Rtfs::Map(vec![(kw("optional"), Rtfs::Bool(true))]),
                                    t.to_rtfs(),
                                ]));
                                continue;
                            }
                        }
                    } else {
                        match &f.ty {
                            // Spelled out: `[:k :int?]` would read back as an optional field.
                            TypeExpr::Optional(inner) => {
                                Rtfs::Vector(vec![kw("optional"), inner.to_rtfs()])
                            }
                            t => t.to_rtfs(),
                        }
                    };
                    items.push(Rtfs::Vector(vec![field_key(&f.name), ty]));
                }
                Rtfs::Vector(items)
            }
        }
    }

    /// The type as compact RTFS text, e.g. `[:map [:text :string]]`.
    pub fn to_text(&self) -> String {
        rtfs::print_compact(&self.to_rtfs())
    }

    /// Checks JSON `text` against the type, reading it once without
    /// building a value when it fits; when it does not, the error is
    /// [`validate`](Self::validate)'s, or says the text is not JSON.
    pub fn check_text(&self, text: &str) -> Result<(), TextError> {
        // The common flat object in one pass; any other text read with serde.
        if flat::fits(self, text).is_some() || text::fits(self, text) {
            return Ok(());
        }
        let value: Json =
            serde_json::from_str(text).map_err(|e| TextError::NotJson(e.to_string()))?;
        self.validate(&value).map_err(TextError::Invalid)
    }

    /// [`check_text`](Self::check_text) with text that is not JSON
    /// reported as a mismatch at `$`.
    pub fn validate_text(&self, text: &str) -> Result<(), ValidationError> {
        self.check_text(text).map_err(|e| match e {
            TextError::Invalid(e) => e,
            TextError::NotJson(why) => ValidationError {
                path: "$".into(),
                message: format!("not JSON: {why}"),
            },
        })
    }

    /// Checks `value` against the type; the error names the first mismatch.
    pub fn validate(&self, value: &Json) -> Result<(), ValidationError> {
        self.check(value, &Path::Root)
    }

    fn check(&self, v: &Json, path: &Path<'_>) -> Result<(), ValidationError> {
        let fail = |message: String| {
            Err(ValidationError {
                path: path.render(),
                message,
            })
        };
        let expected =
            |ty: &TypeExpr| fail(format!("expected {}, got {}", ty.to_text(), json_kind(v)));
        let kind_is = |ok: bool| if ok { Ok(()) } else { expected(self) };
        match self {
            TypeExpr::Any => Ok(()),
            TypeExpr::Nil => kind_is(v.is_null()),
            TypeExpr::Bool => kind_is(v.is_boolean()),
            TypeExpr::String => kind_is(v.is_string()),
            TypeExpr::Float => kind_is(v.is_number()),
            TypeExpr::Int => match v {
                Json::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
                Json::Number(n) if n.as_f64().is_some_and(is_whole) => Ok(()),
                Json::Number(_) => fail("expected :int, got a number with a fraction".into()),
                _ => expected(self),
            },
            TypeExpr::Optional(t) => {
                if v.is_null() {
                    Ok(())
                } else {
                    t.check(v, path)
                }
            }
            TypeExpr::Vector(t) => match v {
                Json::Array(items) => items
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, item)| t.check(item, &Path::Index(path, i))),
                _ => expected(self),
            },
            TypeExpr::Tuple(ts) => match v {
                Json::Array(items) if items.len() == ts.len() => ts
                    .iter()
                    .zip(items)
                    .enumerate()
                    .try_for_each(|(i, (t, item))| t.check(item, &Path::Index(path, i))),
                Json::Array(items) => fail(format!(
                    "expected a tuple of {} items, got {}",
                    ts.len(),
                    items.len()
                )),
                _ => expected(self),
            },
            TypeExpr::Map(fields) => match v {
                Json::Object(obj) => {
                    for f in fields {
                        let p = Path::Key(path, &f.name);
                        match obj.get(&f.name) {
                            None if f.optional => {}
                            None => {
                                return Err(ValidationError {
                                    path: p.render(),
                                    message: format!(
                                        "missing required key (expected {})",
                                        f.ty.to_text()
                                    ),
                                })
                            }
                            Some(Json::Null) if f.optional => {}
                            Some(item) => f.ty.check(item, &p)?,
                        }
                    }
                    Ok(())
                }
                _ => fail(format!("expected a map, got {}", json_kind(v))),
            },
            TypeExpr::Enum(ls) => {
                if ls.iter().any(|l| l.matches(v)) {
                    Ok(())
                } else {
                    fail(format!(
                        "expected one of {}, got {v}",
                        ls.iter()
                            .map(|l| l.to_json().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
            TypeExpr::Union(ts) => {
                if ts.iter().any(|t| t.check(v, path).is_ok()) {
                    Ok(())
                } else {
                    expected(self)
                }
            }
        }
    }

    /// The equivalent JSON Schema (draft 2020-12).
    pub fn to_json_schema(&self) -> Json {
        match self {
            TypeExpr::Int => json!({"type": "integer"}),
            TypeExpr::Float => json!({"type": "number"}),
            TypeExpr::String => json!({"type": "string"}),
            TypeExpr::Bool => json!({"type": "boolean"}),
            TypeExpr::Nil => json!({"type": "null"}),
            TypeExpr::Any => json!({}),
            TypeExpr::Optional(t) => json!({"anyOf": [t.to_json_schema(), {"type": "null"}]}),
            TypeExpr::Vector(t) => json!({"type": "array", "items": t.to_json_schema()}),
            TypeExpr::Tuple(ts) => json!({
                "type": "array",
                "prefixItems": ts.iter().map(TypeExpr::to_json_schema).collect::<Vec<_>>(),
                "minItems": ts.len(),
                "maxItems": ts.len(),
            }),
            TypeExpr::Map(fields) => {
                let mut props = Map::new();
                let mut required = Vec::new();
                for f in fields {
                    props.insert(f.name.clone(), f.ty.to_json_schema());
                    if !f.optional {
                        required.push(json!(f.name));
                    }
                }
                let mut o = json!({"type": "object", "properties": props});
                if !required.is_empty() {
                    o["required"] = Json::Array(required);
                }
                o
            }
            TypeExpr::Enum(ls) => {
                json!({"enum": ls.iter().map(Literal::to_json).collect::<Vec<_>>()})
            }
            TypeExpr::Union(ts) => {
                json!({"anyOf": ts.iter().map(TypeExpr::to_json_schema).collect::<Vec<_>>()})
            }
        }
    }

    /// Converts a JSON Schema (as MCP tools publish them) into a type
    /// expression. What RTFS types cannot express becomes `:any` or is
    /// dropped, and each such loss is described in the returned notes.
    pub fn from_json_schema(schema: &Json) -> (TypeExpr, Vec<String>) {
        let mut notes = Vec::new();
        // Local references (`#/$defs/Address`, as every nested pydantic
        // model gives) are replaced by what they name first.
        let mut budget = MAX_INLINED_NODES;
        let expanded = inline_refs(
            schema,
            schema,
            &mut Vec::new(),
            &mut budget,
            "$",
            &mut notes,
        );
        let t = from_js(&expanded, "$", &mut notes, 0);
        (t, notes)
    }
}

/// A map key as a keyword where it can be one, else as a string.
fn field_key(name: &str) -> Rtfs {
    rtfs::key_to_rtfs(name)
}

fn primitive(k: &str) -> Result<TypeExpr, SchemaError> {
    Ok(match k {
        "int" | "integer" => TypeExpr::Int,
        "float" | "number" | "double" => TypeExpr::Float,
        "string" | "str" => TypeExpr::String,
        "bool" | "boolean" => TypeExpr::Bool,
        "nil" | "null" => TypeExpr::Nil,
        "any" => TypeExpr::Any,
        "map" => TypeExpr::Map(Vec::new()),
        "vector" => TypeExpr::Vector(Box::new(TypeExpr::Any)),
        other => return Err(SchemaError(format!("unknown type `:{other}` (expected :int, :float, :string, :bool, :nil, :any or a compound type)"))),
    })
}

fn parse_map(args: &[Rtfs]) -> Result<TypeExpr, SchemaError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut add = |name: &str, ty_v: &Rtfs, forced_optional: bool| -> Result<(), SchemaError> {
        if fields.iter().any(|f| f.name == name) {
            return Err(SchemaError(format!("map key `:{name}` appears twice")));
        }
        // `:T?` as a field type means the field is optional.
        let (ty, optional) = match TypeExpr::from_rtfs(ty_v)? {
            TypeExpr::Optional(inner) if matches!(ty_v, Rtfs::Keyword(_)) && !forced_optional => {
                (*inner, true)
            }
            t => (t, forced_optional),
        };
        fields.push(Field {
            name: name.to_string(),
            ty,
            optional,
        });
        Ok(())
    };
    match args {
        [Rtfs::Map(pairs)] => {
            for (k, v) in pairs {
                let name = k.as_key().ok_or_else(|| {
                    SchemaError(format!("map key must be a keyword, got {}", k.kind()))
                })?;
                add(name, v, false)?;
            }
        }
        _ => {
            for entry in args {
                match entry {
                    Rtfs::Vector(e) => match e.as_slice() {
                        [k, t] => add(
                            k.as_key().ok_or_else(|| {
                                SchemaError("map entry key must be a keyword".into())
                            })?,
                            t,
                            false,
                        )?,
                        [k, Rtfs::Map(props), t] => {
                            let optional = matches!(
                                props.iter().find(|(pk, _)| pk.as_key() == Some("optional")),
                                Some((_, Rtfs::Bool(true)))
                            );
                            add(
                                k.as_key().ok_or_else(|| {
                                    SchemaError("map entry key must be a keyword".into())
                                })?,
                                t,
                                optional,
                            )?
                        }
                        _ => {
                            return Err(SchemaError(format!(
                                "map entry `{}` must be [:key type]",
                                rtfs::print_compact(entry)
                            )))
                        }
                    },
                    other => {
                        return Err(SchemaError(format!(
                            "map entry must be [:key type], got {} `{}`",
                            other.kind(),
                            rtfs::print_compact(other)
                        )))
                    }
                }
            }
        }
    }
    Ok(TypeExpr::Map(fields))
}

/// How many schema nodes reference inlining may produce, so that a small
/// schema whose references fan out cannot grow without bound.
const MAX_INLINED_NODES: usize = 20_000;

/// `schema` with each local `$ref` (a JSON pointer into `root`, such as
/// `#/$defs/Address`) replaced by the schema it names, merged with the
/// keywords beside it. A recursive reference, a remote one, one that names
/// nothing, or one past the budget is left in place (it becomes `:any`,
/// with a note).
fn inline_refs(
    schema: &Json,
    root: &Json,
    stack: &mut Vec<String>,
    budget: &mut usize,
    at: &str,
    notes: &mut Vec<String>,
) -> Json {
    if *budget == 0 {
        return schema.clone();
    }
    *budget -= 1;
    match schema {
        Json::Object(obj) => {
            if let Some(Json::String(r)) = obj.get("$ref") {
                let target = r.strip_prefix('#').and_then(|p| root.pointer(p));
                match target {
                    Some(t) if !stack.contains(r) => {
                        stack.push(r.clone());
                        let mut resolved = inline_refs(t, root, stack, budget, at, notes);
                        stack.pop();
                        if let Json::Object(merged) = &mut resolved {
                            for (k, v) in obj {
                                if k != "$ref" && !merged.contains_key(k) {
                                    merged.insert(
                                        k.clone(),
                                        inline_refs(v, root, stack, budget, at, notes),
                                    );
                                }
                            }
                        }
                        return resolved;
                    }
                    Some(_) => notes.push(format!(
                        "{at}: `$ref` {r} refers to itself (a recursive type)"
                    )),
                    None => notes.push(format!("{at}: `$ref` {r} names nothing in this schema")),
                }
                return schema.clone();
            }
            Json::Object(
                obj.iter()
                    .map(|(k, v)| {
                        // Definitions are reached through references only.
                        let v = if k == "$defs" || k == "definitions" {
                            v.clone()
                        } else {
                            inline_refs(v, root, stack, budget, at, notes)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| inline_refs(v, root, stack, budget, at, notes))
                .collect(),
        ),
        other => other.clone(),
    }
}

const IGNORED_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
];

fn from_js(s: &Json, at: &str, notes: &mut Vec<String>, depth: usize) -> TypeExpr {
    if depth > 64 {
        notes.push(format!("{at}: nested too deeply; became :any"));
        return TypeExpr::Any;
    }
    let obj = match s {
        Json::Bool(true) => return TypeExpr::Any,
        Json::Bool(false) => {
            notes.push(format!("{at}: `false` (nothing matches) became :any"));
            return TypeExpr::Any;
        }
        Json::Object(o) => o,
        _ => {
            notes.push(format!("{at}: not a schema object; became :any"));
            return TypeExpr::Any;
        }
    };
    for key in [
        "$ref",
        "allOf",
        "not",
        "if",
        "patternProperties",
        "dependentSchemas",
    ] {
        if obj.contains_key(key) {
            notes.push(format!("{at}: `{key}` cannot be expressed; became :any"));
            return TypeExpr::Any;
        }
    }
    let nullable = obj.get("nullable") == Some(&Json::Bool(true));
    let wrap = |t: TypeExpr| {
        if nullable && !matches!(t, TypeExpr::Optional(_) | TypeExpr::Any | TypeExpr::Nil) {
            TypeExpr::Optional(Box::new(t))
        } else {
            t
        }
    };
    if let Some(c) = obj.get("const") {
        return wrap(match literal(c) {
            Some(l) => TypeExpr::Enum(vec![l]),
            None => {
                notes.push(format!("{at}: a non-scalar `const` became :any"));
                TypeExpr::Any
            }
        });
    }
    if let Some(Json::Array(vals)) = obj.get("enum") {
        let lits: Option<Vec<Literal>> = vals.iter().map(literal).collect();
        return wrap(match lits {
            Some(l) if !l.is_empty() => TypeExpr::Enum(l),
            _ => {
                notes.push(format!("{at}: an enum of non-scalar values became :any"));
                TypeExpr::Any
            }
        });
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Json::Array(alts)) = obj.get(key) {
            if key == "oneOf" {
                notes.push(format!(
                    "{at}: `oneOf` became a union (exclusivity is not checked)"
                ));
            }
            let ts: Vec<TypeExpr> = alts
                .iter()
                .enumerate()
                .map(|(i, a)| from_js(a, &format!("{at}.{key}[{i}]"), notes, depth + 1))
                .collect();
            return wrap(simplify_union(ts));
        }
    }
    for (k, _) in obj.iter() {
        let known = [
            "type",
            "properties",
            "required",
            "items",
            "prefixItems",
            "additionalProperties",
            "nullable",
            "enum",
            "const",
            "anyOf",
            "oneOf",
            "minItems",
            "maxItems",
        ];
        if !known.contains(&k.as_str()) && !IGNORED_KEYWORDS.contains(&k.as_str()) {
            notes.push(format!("{at}: constraint `{k}` is not checked"));
        }
    }
    let t = match obj.get("type") {
        None => {
            if obj.contains_key("properties") {
                object(obj, at, notes, depth)
            } else {
                TypeExpr::Any
            }
        }
        Some(Json::String(t)) => single_type(t, obj, at, notes, depth),
        Some(Json::Array(types)) => {
            let ts: Vec<TypeExpr> = types
                .iter()
                .filter_map(|t| t.as_str())
                .map(|t| single_type(t, obj, at, notes, depth))
                .collect();
            simplify_union(ts)
        }
        Some(other) => {
            notes.push(format!(
                "{at}: `type` {other} is not understood; became :any"
            ));
            TypeExpr::Any
        }
    };
    wrap(t)
}

fn single_type(
    t: &str,
    obj: &Map<String, Json>,
    at: &str,
    notes: &mut Vec<String>,
    depth: usize,
) -> TypeExpr {
    match t {
        "integer" => TypeExpr::Int,
        "number" => TypeExpr::Float,
        "string" => TypeExpr::String,
        "boolean" => TypeExpr::Bool,
        "null" => TypeExpr::Nil,
        "object" => object(obj, at, notes, depth),
        "array" => match (obj.get("prefixItems"), obj.get("items")) {
            // 2020-12 `prefixItems`, or the older array form of `items`.
            (Some(Json::Array(prefix)), _) | (_, Some(Json::Array(prefix))) => TypeExpr::Tuple(
                prefix
                    .iter()
                    .enumerate()
                    .map(|(i, p)| from_js(p, &format!("{at}[{i}]"), notes, depth + 1))
                    .collect(),
            ),
            (_, Some(items)) => TypeExpr::Vector(Box::new(from_js(
                items,
                &format!("{at}[]"),
                notes,
                depth + 1,
            ))),
            (_, None) => TypeExpr::Vector(Box::new(TypeExpr::Any)),
        },
        other => {
            notes.push(format!(
                "{at}: type `{other}` is not understood; became :any"
            ));
            TypeExpr::Any
        }
    }
}

fn object(obj: &Map<String, Json>, at: &str, notes: &mut Vec<String>, depth: usize) -> TypeExpr {
    let required: Vec<&str> = obj
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let mut fields = Vec::new();
    if let Some(Json::Object(props)) = obj.get("properties") {
        for (name, p) in props {
            let ty = from_js(p, &push_key(at, name), notes, depth + 1);
            fields.push(Field {
                name: name.clone(),
                optional: !required.contains(&name.as_str()),
                ty,
            });
        }
    }
    match obj.get("additionalProperties") {
        None | Some(Json::Bool(true)) => {}
        Some(Json::Bool(false)) => notes.push(format!(
            "{at}: `additionalProperties: false` is not checked (maps are open)"
        )),
        Some(_) => notes.push(format!(
            "{at}: the type of additional properties is not checked"
        )),
    }
    TypeExpr::Map(fields)
}

fn simplify_union(mut ts: Vec<TypeExpr>) -> TypeExpr {
    if ts.contains(&TypeExpr::Any) {
        return TypeExpr::Any;
    }
    let had_nil = ts.contains(&TypeExpr::Nil);
    ts.retain(|t| *t != TypeExpr::Nil);
    let core = match ts.len() {
        0 => return TypeExpr::Nil,
        1 => ts.remove(0),
        _ => TypeExpr::Union(ts),
    };
    if had_nil {
        TypeExpr::Optional(Box::new(core))
    } else {
        core
    }
}

fn literal(v: &Json) -> Option<Literal> {
    Some(match v {
        Json::String(s) => Literal::String(s.clone()),
        Json::Bool(b) => Literal::Bool(*b),
        Json::Null => Literal::Nil,
        Json::Number(n) => match n.as_i64() {
            Some(i) => Literal::Int(i),
            None => Literal::Float(n.as_f64()?),
        },
        _ => return None,
    })
}

impl fmt::Display for TypeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}
