//! LI's JSON documents, read cheaply but as tolerantly as `serde_json::Value`.
//!
//! Every poll parses a search page and one detail per changed order. As a
//! `serde_json::Value` each document cost a `BTreeMap` per object, an owned
//! `String` per key and per text value and their frees: the largest part of
//! the connector's CPU per sweep (docs/BENCHMARKS.md, issue 16, session 26).
//! [`Json`] is the same tree, but text without escapes borrows from the
//! response body and an object is a plain list of its members, looked up by
//! a linear scan (LI's objects have a few dozen keys at most).
//!
//! The mapping reads documents through [`Node`], which both [`Json`] and
//! `serde_json::Value` implement, so every tolerance written against
//! `Value` (strings for numbers, objects for URIs, nulls, missing fields)
//! reads the same: a duplicate key's last occurrence wins, as in `Value`;
//! numbers are `serde_json::Number`s built the way `Value` builds them; the
//! nesting limit is the parser's; and [`Node::json_text`] prints a value as
//! `Value` prints it (keys sorted), for messages naming what arrived.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What kind of JSON value a node is, with its scalar content.
#[derive(Debug)]
pub enum Kind<'n, N> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool,
    /// A number.
    Number(&'n Number),
    /// A string.
    Str(&'n str),
    /// An array.
    Array(&'n [N]),
    /// An object (its members through [`Node::get`]).
    Object,
}

/// A JSON value as the mapping reads it.
pub trait Node: Sized {
    /// Its kind and scalar content.
    fn kind(&self) -> Kind<'_, Self>;

    /// The member `key` of an object; `None` for a missing key or a value
    /// that is not an object.
    fn get(&self, key: &str) -> Option<&Self>;

    /// Compact JSON text, as `serde_json::Value`'s `to_string` prints it.
    fn json_text(&self) -> String {
        self.to_value().to_string()
    }

    /// The same value as a `serde_json::Value` (a later duplicate key
    /// replaces an earlier one, as when `Value` parses the text).
    fn to_value(&self) -> Value;

    /// `null`.
    fn is_null(&self) -> bool {
        matches!(self.kind(), Kind::Null)
    }

    /// An object.
    fn is_object(&self) -> bool {
        matches!(self.kind(), Kind::Object)
    }

    /// The text of a string.
    fn as_str(&self) -> Option<&str> {
        match self.kind() {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of an array.
    fn as_array(&self) -> Option<&[Self]> {
        match self.kind() {
            Kind::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A JSON integer or numeric string.
    fn as_u64(&self) -> Option<u64> {
        match self.kind() {
            Kind::Number(n) => n.as_u64(),
            Kind::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl Node for Value {
    fn kind(&self) -> Kind<'_, Self> {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) => Kind::Number(n),
            Value::String(s) => Kind::Str(s),
            Value::Array(items) => Kind::Array(items),
            Value::Object(_) => Kind::Object,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        Value::get(self, key)
    }

    fn json_text(&self) -> String {
        self.to_string()
    }

    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// A parsed JSON value borrowing its unescaped text from the document.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Json<'a> {
    /// `null` (also a number `Value` cannot hold, as there).
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object's members in document order, duplicates included.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parse a whole document (trailing characters and all, as
    /// `serde_json::from_slice` does).
    ///
    /// The text is checked to be UTF-8 once, in one pass, and then parsed as
    /// a `str`: `from_slice` checks every string on its own as it meets it,
    /// which cost more than the one pass (a few hundred short strings per
    /// order). Text that is not UTF-8 goes through `from_slice` as before,
    /// for the same error at the same position.
    pub fn parse(bytes: &'a [u8]) -> serde_json::Result<Self> {
        match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(bytes),
        }
    }

    /// Take the member `key` out of an object, leaving `null` in its place.
    pub fn take(&mut self, key: &str) -> Option<Json<'a>> {
        match self {
            Json::Object(members) => members
                .iter_mut()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| std::mem::take(v)),
            _ => None,
        }
    }

    /// The same value owning all its text.
    pub fn into_owned(self) -> Json<'static> {
        match self {
            Json::Null => Json::Null,
            Json::Bool(b) => Json::Bool(b),
            Json::Number(n) => Json::Number(n),
            Json::Str(s) => Json::Str(Cow::Owned(s.into_owned())),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Json::Object(members) => Json::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

impl Node for Json<'_> {
    fn kind(&self) -> Kind<'_, Self> {
        match self {
            Json::Null => Kind::Null,
            Json::Bool(_) => Kind::Bool,
            Json::Number(n) => Kind::Number(n),
            Json::Str(s) => Kind::Str(s),
            Json::Array(items) => Kind::Array(items),
            Json::Object(_) => Kind::Object,
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            // The last occurrence, as `Value` keeps it.
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::Str(s) => Value::String(s.as_ref().to_owned()),
            Json::Array(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Json::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_owned(), v.to_value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor(std::marker::PhantomData))
    }
}

/// Text borrowed from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// Builds [`Json`] the way `serde_json::Value`'s own visitor builds a `Value`.
struct JsonVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The parser gives no size hint: start where LI's lists usually end
        // instead of growing from one element.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // LI's objects have from a few to a few dozen members.
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(Text(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"b":1,"a":"x\"y","n":null,"f":-1.5e3,"big":18446744073709551615,
        "neg":-7,"arr":[true,{"z":[]},"t"],"b":"last","o":{"k":"v"}}"#;

    #[test]
    fn reads_like_value_and_prints_like_value() {
        let json = Json::parse(DOC.as_bytes()).unwrap();
        let value: Value = serde_json::from_str(DOC).unwrap();
        assert_eq!(json.to_value(), value);
        assert_eq!(json.json_text(), value.to_string());
        assert_eq!(json.get("b").unwrap().as_str(), Some("last"), "last wins");
        assert_eq!(json.get("big").unwrap().as_u64(), Some(u64::MAX));
        assert!(json.get("n").unwrap().is_null());
        assert!(json.get("missing").is_none());
        assert!(json.get("arr").unwrap().get("z").is_none());
        assert_eq!(json.get("arr").unwrap().as_array().unwrap().len(), 3);
        assert!(matches!(json.get("a"), Some(Json::Str(Cow::Owned(_)))));
        assert!(matches!(json.get("b"), Some(Json::Str(Cow::Borrowed(_)))));
        assert_eq!(json.clone().into_owned(), json);
    }

    #[test]
    fn refuses_what_value_refuses() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1} x",
            "nul",
            "\"\\ud800\"",
            &"[".repeat(200),
        ] {
            assert!(Json::parse(bad.as_bytes()).is_err(), "{bad:?}");
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad:?}");
        }
        assert!(Json::parse(b"\"\xff\"").is_err());
    }

    #[test]
    fn take_leaves_null() {
        let mut json = Json::parse(br#"{"objects":[1],"meta":{}}"#).unwrap();
        assert_eq!(
            json.take("objects").unwrap().as_array().map(<[_]>::len),
            Some(1)
        );
        assert!(json.get("objects").unwrap().is_null());
        assert!(json.take("nope").is_none());
    }

    mod same_as_value {
        //! Property: for any order-like document, the mapping reads a
        //! [`Json`] exactly as it reads the `serde_json::Value` of the same
        //! text (keys repeated, escapes, hostile values).

        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::super::{Json, Node};
        use crate::mapping;

        const KEYS: [&str; 24] = [
            "numero",
            "data_modificacao",
            "data_criacao",
            "data_expiracao",
            "situacao",
            "valor_total",
            "valor_subtotal",
            "valor_envio",
            "valor_desconto",
            "itens",
            "cliente",
            "envios",
            "pagamentos",
            "endereco_entrega",
            "id_externo",
            "id_anymarket",
            "cupom_desconto",
            "codigo",
            "id",
            "nome",
            "quantidade",
            "preco_venda",
            "objeto",
            "forma_pagamento",
        ];

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<u64>().prop_map(|n| json!(n)),
                (-1e7f64..1e7).prop_map(|f| json!(f)),
                Just(json!("2024-05-10T09:12:47.556120")),
                Just(json!("/api/v1/situacao/4")),
                Just(json!("/api/v1/cliente/7")),
                Just(json!(" 106.38 ")),
                "[0-9]{1,6}(\\.[0-9]{0,4})?".prop_map(Value::String),
                ".{0,12}".prop_map(Value::String),
            ]
        }

        /// Text of an object with these members, repeats kept.
        fn object_text(members: &[(usize, Value)]) -> String {
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{v}", json!(KEYS[*k % KEYS.len()])))
                .collect();
            format!("{{{}}}", body.join(","))
        }

        fn value() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(3, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((0..KEYS.len(), inner), 0..6).prop_map(|members| {
                        members
                            .into_iter()
                            .map(|(k, v)| (KEYS[k].to_owned(), v))
                            .collect()
                    }),
                ]
            })
        }

        proptest! {
            #[test]
            fn the_mapping_reads_json_as_it_reads_value(
                members in prop::collection::vec((0..KEYS.len(), value()), 0..20),
                template in prop::option::of(Just("https://t.example/{code}".to_owned())),
            ) {
                let text = object_text(&members);
                let value: Value = serde_json::from_str(&text).unwrap();
                let json = Json::parse(text.as_bytes()).unwrap();
                prop_assert_eq!(json.to_value(), value.clone());
                prop_assert_eq!(json.json_text(), value.to_string());
                let key = mapping::change_key(&json);
                prop_assert_eq!(&key, &mapping::change_key(&value));
                let key = key.unwrap_or(mapping::ChangeKey {
                    numero: 1,
                    status: String::new(),
                    modified: jiff::civil::date(2024, 5, 10).at(9, 0, 0, 0),
                });
                let (a, wa) = mapping::summary(&json, &key);
                let (b, wb) = mapping::summary(&value, &key);
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                prop_assert_eq!(wa.0, wb.0);
                let cliente = json.get("cliente");
                let cliente_value = value.get("cliente");
                let (a, wa) = mapping::detailed(&json, &key, cliente, template.as_deref());
                let (b, wb) =
                    mapping::detailed(&value, &key, cliente_value, template.as_deref());
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
                prop_assert_eq!(wa.0, wb.0);
            }
        }
    }
}
