//! The business a sandbox starts with: its WABA, phone numbers and app credentials, drawn at
//! random or kept in a state directory across restarts.

use serde::{Deserialize, Serialize};

use crate::files::{create_private_dir, write_private};
use crate::ids;

/// A sandbox business: one WABA, its phone numbers and the app credentials that go with it.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Seed {
    pub waba_id: String,
    pub business_name: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    pub phone_numbers: Vec<SeedNumber>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedNumber {
    pub id: String,
    /// As Meta formats it in phone-number lists: `+1 555-010-4471`.
    pub display_phone_number: String,
    pub verified_name: String,
}

/// Credentials stay out of logs, even a test tool's.
impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seed")
            .field("waba_id", &self.waba_id)
            .field("business_name", &self.business_name)
            .field("phone_numbers", &self.phone_numbers)
            .finish_non_exhaustive()
    }
}

impl Seed {
    /// A new business with two phone numbers. Ids are drawn at random, as Meta's are globally
    /// unique: two sandboxes never share one. Credentials not given are generated.
    pub fn generate(app_secret: Option<String>, verify_token: Option<String>, access_token: Option<String>) -> Self {
        let phone_numbers = (0..2)
            .map(|i| SeedNumber {
                id: ids::numeric_id(),
                display_phone_number: ids::display_number(),
                verified_name: if i == 0 { "Sandbox Shop".into() } else { "Sandbox Support".into() },
            })
            .collect();
        Self {
            waba_id: ids::numeric_id(),
            business_name: "Sandbox Business".into(),
            access_token: access_token.unwrap_or_else(ids::access_token),
            app_secret: app_secret.unwrap_or_else(|| ids::hex_token(16)),
            verify_token: verify_token.unwrap_or_else(|| ids::alnum(24)),
            phone_numbers,
        }
    }
}

impl Seed {
    /// The business kept in `dir` (`seed.json`), or a new one saved there, so a sandbox with a
    /// state directory keeps its ids and credentials across restarts. Credentials given replace
    /// the kept ones.
    pub fn load_or_generate(
        dir: &std::path::Path,
        app_secret: Option<String>,
        verify_token: Option<String>,
        access_token: Option<String>,
    ) -> std::io::Result<Self> {
        let path = dir.join("seed.json");
        let mut seed = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Seed>(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is unreadable: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seed::generate(None, None, None),
            Err(e) => return Err(e),
        };
        seed.app_secret = app_secret.unwrap_or(seed.app_secret);
        seed.verify_token = verify_token.unwrap_or(seed.verify_token);
        seed.access_token = access_token.unwrap_or(seed.access_token);
        create_private_dir(dir)?;
        write_private(&path, &serde_json::to_vec_pretty(&seed).expect("seed serialises"))?;
        Ok(seed)
    }
}
