//! A small JSON Schema validator for the subset the `kcmp` schemas use
//! (`crates/kcmp-cli/schema/*.schema.json`): `type` (one or a list),
//! `properties`, `required`, `additionalProperties` (a bool or a schema),
//! `items`, `enum`, `const`, `minimum`, `minItems`, `anyOf`, `oneOf`, local
//! `$ref` (`#/$defs/NAME`), plus the annotations `$schema`, `$id`, `title`,
//! `description`, `$defs`. Any other keyword is refused, so a schema is
//! never checked less than it says.
//!
//! ```
//! use serde_json::json;
//! let schema = json!({"type": "object", "required": ["a"],
//!     "properties": {"a": {"type": "integer", "minimum": 0}}, "additionalProperties": false});
//! assert!(kcmp_testkit::schema::validate(&schema, &json!({"a": 1})).is_empty());
//! assert_eq!(kcmp_testkit::schema::validate(&schema, &json!({"a": -1, "b": 2})).len(), 2);
//! ```

use serde_json::Value;

const KNOWN: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "$defs",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "minItems",
    "anyOf",
    "oneOf",
    "$ref",
];

/// Every violation of `schema` by `value`, as `PATH: what` lines (empty
/// when it validates). Panics on a keyword outside the supported subset or
/// a `$ref` that does not resolve.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, value, "$", &mut errors);
    errors
}

/// Loads a schema file and validates `value`, panicking with every
/// violation; `what` names the output in the message.
pub fn assert_valid(schema_path: &std::path::Path, value: &Value, what: &str) {
    let text = std::fs::read_to_string(schema_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", schema_path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", schema_path.display()));
    let errors = validate(&schema, value);
    assert!(
        errors.is_empty(),
        "{what} does not match {}:\n{}\n--- value\n{value}",
        schema_path.display(),
        errors.join("\n")
    );
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("unknown type {other:?} in schema"),
    }
}

fn resolve<'a>(root: &'a Value, r: &str) -> &'a Value {
    let name = r
        .strip_prefix("#/$defs/")
        .unwrap_or_else(|| panic!("unsupported $ref {r:?} (only #/$defs/NAME)"));
    root["$defs"]
        .get(name)
        .unwrap_or_else(|| panic!("$ref {r:?} does not resolve"))
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            errors.push(format!("{path}: not allowed"));
        }
        return;
    };
    for k in s.keys() {
        assert!(
            KNOWN.contains(&k.as_str()),
            "unsupported schema keyword {k:?} at {path}"
        );
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        check(root, resolve(root, r), v, path, errors);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap_or("?"), v)),
            _ => panic!("bad type at {path}"),
        };
        if !ok {
            errors.push(format!("{path}: expected type {t}, got {v}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!(
                "{path}: {v} is not one of {}",
                Value::Array(e.clone())
            ));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{path}: {v} is not {c}"));
        }
    }
    if let (Some(m), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < m {
            errors.push(format!("{path}: {n} < minimum {m}"));
        }
    }
    if let Some(a) = v.as_array() {
        if let Some(m) = s.get("minItems").and_then(Value::as_u64) {
            if (a.len() as u64) < m {
                errors.push(format!("{path}: fewer than {m} items"));
            }
        }
        if let Some(items) = s.get("items") {
            for (i, x) in a.iter().enumerate() {
                check(root, items, x, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(o) = v.as_object() {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or("?");
            if !o.contains_key(r) {
                errors.push(format!("{path}: missing key {r:?}"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, x) in o {
            let sub = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(root, ps, x, &sub, errors),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{sub}: unexpected key")),
                    Some(a @ Value::Object(_)) => check(root, a, x, &sub, errors),
                    _ => {}
                },
            }
        }
    }
    for (kw, exactly_one) in [("anyOf", false), ("oneOf", true)] {
        if let Some(alts) = s.get(kw).and_then(Value::as_array) {
            let passing = alts
                .iter()
                .filter(|alt| {
                    let mut e = Vec::new();
                    check(root, alt, v, path, &mut e);
                    e.is_empty()
                })
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                errors.push(format!(
                    "{path}: {passing} of the {kw} alternatives match {v}"
                ));
            }
        }
    }
}
