//! The networks' JSON Schemas: checked when given, compiled once per
//! network and version, and applied to every record whichever side writes
//! it.

use jsonschema::Validator;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Compiled schemas by network id, with the text they were compiled from.
#[derive(Default)]
pub struct Schemas {
    compiled: Mutex<HashMap<String, (String, Arc<Validator>)>>,
}

/// Compiles `schema`: an error says why it is not a valid JSON Schema.
/// A schema without `$schema` is read as Draft 4, the draft of
/// jim8786453/sync (its `"exclusiveMinimum": true` is valid there); a
/// `$schema` naming another draft is honoured.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err("`schema` must be a JSON Schema (an object)".into());
    }
    let compiled = if schema.get("$schema").is_some() {
        jsonschema::validator_for(schema)
    } else {
        jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(schema)
    };
    compiled.map_err(|err| format!("`schema` is not a valid JSON Schema: {err}"))
}

impl Schemas {
    /// Checks `record` against the schema `text` of network `id`; an error
    /// says what is wrong.
    pub fn check(&self, id: &str, text: &str, record: &Value) -> Result<(), String> {
        let validator = self.validator(id, text)?;
        validator.validate(record).map_err(|err| {
            let at = err.instance_path().to_string();
            if at.is_empty() {
                format!("the record does not satisfy the network's schema: {err}")
            } else {
                format!("the record does not satisfy the network's schema at {at}: {err}")
            }
        })
    }

    fn validator(&self, id: &str, text: &str) -> Result<Arc<Validator>, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((source, validator)) = compiled.get(id) {
            if source == text {
                return Ok(validator.clone());
            }
        }
        let schema: Value = serde_json::from_str(text).map_err(|err| format!("the network's schema is not JSON: {err}"))?;
        let validator = Arc::new(compile(&schema)?);
        compiled.insert(id.to_owned(), (text.to_owned(), validator.clone()));
        Ok(validator)
    }
}
