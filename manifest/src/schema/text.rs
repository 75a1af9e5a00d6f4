//! Checking JSON text against a type while it is read, without building a
//! `serde_json::Value`: a call's input and output are checked this way on
//! the text path ([`TypeExpr::validate_text`]). Only the answer "fits" is
//! decided here; when the text does not fit (or the check cannot decide,
//! e.g. a `[:union ...]`), the value is parsed and checked by
//! [`TypeExpr::validate`], whose error (path and message) is the one
//! reported. A key given twice is checked each time: a JSON object keeps the
//! last, so text that fits here also fits as a value.

use super::{ScalarView, TypeExpr};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Whether `text` is one JSON value that fits `ty` (`false` also when it is
/// not JSON, or when deciding needs the whole value).
pub(super) fn fits(ty: &TypeExpr, text: &str) -> bool {
    let mut reader = serde_json::Deserializer::from_str(text);
    Fits(ty).deserialize(&mut reader).is_ok() && reader.end().is_ok()
}

/// Most fields of a `[:map ...]` checked here (one bit each).
const MAX_FIELDS: usize = 128;

/// Reads one value, failing as soon as it does not fit its type.
#[derive(Clone, Copy)]
struct Fits<'t>(&'t TypeExpr);

/// A scalar as read.
#[derive(Clone, Copy)]
pub(super) enum Scalar<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(&'a str),
}

impl ScalarView for Scalar<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }

    fn as_f64(&self) -> Option<f64> {
        match *self {
            Scalar::I64(n) => Some(n as f64),
            Scalar::U64(n) => Some(n as f64),
            Scalar::F64(f) => Some(f),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            Scalar::I64(n) => Some(n),
            Scalar::U64(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }
}

impl Scalar<'_> {
    /// Whether this scalar fits `ty` (as `TypeExpr::validate` decides).
    pub(super) fn fits(self, ty: &TypeExpr) -> bool {
        match (ty, self) {
            (TypeExpr::Any, _)
            | (TypeExpr::Nil, Scalar::Null)
            | (TypeExpr::Bool, Scalar::Bool(_))
            | (TypeExpr::String, Scalar::Str(_))
            | (TypeExpr::Int, Scalar::I64(_) | Scalar::U64(_)) => true,
            (TypeExpr::Float, s) => s.as_f64().is_some(),
            (TypeExpr::Int, Scalar::F64(f)) => super::is_whole(f),
            (TypeExpr::Optional(_), Scalar::Null) => true,
            (TypeExpr::Optional(t), s) => s.fits(t),
            (TypeExpr::Enum(ls), s) => ls.iter().any(|l| l.matches(&s)),
            (TypeExpr::Union(ts), s) => ts.iter().any(|t| s.fits(t)),
            _ => false,
        }
    }
}

fn misfit<E: de::Error>() -> E {
    E::custom("does not fit")
}

impl<'de> DeserializeSeed<'de> for Fits<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0 {
            TypeExpr::Any => <IgnoredAny as serde::Deserialize>::deserialize(d).map(drop),
            // A union's alternatives each need the whole value: decided on
            // the parsed value.
            TypeExpr::Union(_) => {
                let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
                self.0.validate(&v).map_err(|_| misfit())
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Fits<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value of type {}", self.0.to_text())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar(Scalar::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Scalar::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(Scalar::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(Scalar::F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.scalar(Scalar::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.0.without_optional() {
            TypeExpr::Vector(t) => {
                while seq.next_element_seed(Fits(t))?.is_some() {}
                Ok(())
            }
            TypeExpr::Tuple(ts) => {
                for t in ts {
                    seq.next_element_seed(Fits(t))?.ok_or_else(misfit)?;
                }
                match seq.next_element::<IgnoredAny>()? {
                    None => Ok(()),
                    Some(_) => Err(misfit()),
                }
            }
            _ => Err(misfit()),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let TypeExpr::Map(fields) = self.0.without_optional() else {
            return Err(misfit());
        };
        if fields.len() > MAX_FIELDS {
            return Err(misfit());
        }
        let mut seen = 0u128;
        while let Some(key) = map.next_key_seed(FieldIndex(fields))? {
            let Some(i) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            seen |= 1 << i;
            let f = &fields[i];
            map.next_value_seed(FieldValue {
                ty: &f.ty,
                optional: f.optional,
            })?;
        }
        let missing = fields
            .iter()
            .enumerate()
            .any(|(i, f)| !f.optional && seen & (1 << i) == 0);
        if missing {
            return Err(misfit());
        }
        Ok(())
    }
}

impl Fits<'_> {
    fn scalar<E: de::Error>(self, s: Scalar<'_>) -> Result<(), E> {
        if s.fits(self.0) {
            Ok(())
        } else {
            Err(misfit())
        }
    }
}

impl TypeExpr {
    /// The type, or the type an `:optional` wraps (a compound value is not
    /// nil, so only the wrapped type can fit it).
    pub(super) fn without_optional(&self) -> &TypeExpr {
        match self {
            TypeExpr::Optional(t) => t.without_optional(),
            t => t,
        }
    }
}

/// Reads a map key: the index of the field it names, if any.
struct FieldIndex<'t>(&'t [super::Field]);

impl<'de> DeserializeSeed<'de> for FieldIndex<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldIndex<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|f| f.name == v))
    }
}

/// A field's value: its type, or nil when the field is optional.
struct FieldValue<'t> {
    ty: &'t TypeExpr,
    optional: bool,
}

impl<'de> DeserializeSeed<'de> for FieldValue<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if !self.optional {
            return Fits(self.ty).deserialize(d);
        }
        // `null` for an optional field, or the type (which may itself take
        // `null`); deciding needs to see which, so read it as an option.
        d.deserialize_option(OptionalValue(self.ty))
    }
}

struct OptionalValue<'t>(&'t TypeExpr);

impl<'de> Visitor<'de> for OptionalValue<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nil or a value of type {}", self.0.to_text())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        Fits(self.0).deserialize(d)
    }
}
