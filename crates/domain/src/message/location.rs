//! `location` messages (and the location of a template header).

use serde::{Deserialize, Serialize};

use super::Validate;
use super::de::NumOrStr;
use super::rules::{key, opt_text};
use crate::validation::FieldError;

/// A place on the map. Meta's docs give coordinates as strings and its OpenAPI examples as
/// numbers; both are taken and kept as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Decimal degrees, -90 to 90.
    pub latitude: NumOrStr,
    /// Decimal degrees, -180 to 180.
    pub longitude: NumOrStr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// Meta documents no limits for a location's name and address; these only stop nonsense.
const NAME_MAX: usize = 1000;

fn coordinate(path: &str, value: &NumOrStr, bound: f64) -> Result<(), FieldError> {
    match value.as_f64() {
        // Meta does not state the ranges; they are the ones every map uses.
        Some(v) if v.is_finite() && v.abs() <= bound => Ok(()),
        Some(_) => Err(FieldError::new(path, "range", format!("must be between -{bound} and {bound}"))),
        None => Err(FieldError::new(path, "invalid_value", format!("must be a decimal number, got '{value}'"))),
    }
}

impl Validate for Location {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        coordinate(&key(path, "latitude"), &self.latitude, 90.0)?;
        coordinate(&key(path, "longitude"), &self.longitude, 180.0)?;
        opt_text(&key(path, "name"), self.name.as_ref(), NAME_MAX)?;
        opt_text(&key(path, "address"), self.address.as_ref(), NAME_MAX)
    }
}
