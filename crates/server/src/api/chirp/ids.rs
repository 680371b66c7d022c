//! Chirp's ids over wagate's: messages `msg_wa_<body>` (`msg_wa_test_<body>` from a sandbox
//! number) for `msg_<body>`, uploads `media_<body>` for `med_<body>`. The body is wagate's, so
//! the mapping needs no storage.

use wagate_domain::id::{MediaId, MessageId};
use wagate_domain::validation::FieldError;
use wagate_storage::AccountMode;

const MESSAGE: &str = "msg_wa_";
const TEST_MESSAGE: &str = "msg_wa_test_";
const MEDIA: &str = "media_";

pub fn chirp_message_id(id: &MessageId, mode: AccountMode) -> String {
    let body = id.as_str().strip_prefix("msg_").unwrap_or(id.as_str());
    match mode {
        AccountMode::Sandbox => format!("{TEST_MESSAGE}{body}"),
        AccountMode::Live => format!("{MESSAGE}{body}"),
    }
}

/// wagate's id of a Chirp message id, test or not.
pub fn native_message_id(chirp: &str) -> Option<MessageId> {
    let body = chirp.strip_prefix(TEST_MESSAGE).or_else(|| chirp.strip_prefix(MESSAGE))?;
    MessageId::parse(&format!("msg_{body}"))
}

pub fn chirp_media_id(id: &MediaId) -> String {
    format!("{MEDIA}{}", id.as_str().strip_prefix("med_").unwrap_or(id.as_str()))
}

/// The ids a request named, Chirp's by wagate's, to word the core's errors in the caller's ids.
#[derive(Default)]
pub struct Ids(Vec<(String, String)>);

impl Ids {
    /// wagate's upload id for the `mediaId` at `param`.
    pub fn upload(&mut self, param: &str, chirp: &str) -> Result<String, FieldError> {
        let native = chirp.strip_prefix(MEDIA).and_then(|body| MediaId::parse(&format!("med_{body}")));
        let native = native.ok_or_else(|| {
            FieldError::new(
                param,
                "invalid_value",
                "must be the id of a file uploaded with POST /chirp/v1/media (media_…)",
            )
        })?;
        self.0.push((native.as_str().to_owned(), chirp.to_owned()));
        Ok(native.into_string())
    }

    /// wagate's id for the Chirp message id at `param`; Meta's ids are refused, as Chirp does.
    pub fn message(&mut self, param: &str, chirp: &str) -> Result<MessageId, FieldError> {
        if chirp.starts_with("wamid.") {
            return Err(FieldError::new(
                param,
                "wamid_not_accepted",
                "Meta IDs (wamid.) are not accepted: give the Chirp message id (msg_wa_…)",
            ));
        }
        let native = native_message_id(chirp)
            .ok_or_else(|| FieldError::new(param, "invalid_value", "must be a Chirp message id (msg_wa_…)"))?;
        self.0.push((native.as_str().to_owned(), chirp.to_owned()));
        Ok(native)
    }

    /// `text` with each of wagate's ids replaced by the Chirp id it was given as.
    pub fn in_chirp_words(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |t, (native, chirp)| t.replace(native, chirp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_both_ways() {
        let id = MessageId::generate();
        let live = chirp_message_id(&id, AccountMode::Live);
        let test = chirp_message_id(&id, AccountMode::Sandbox);
        assert!(live.starts_with("msg_wa_") && !live.starts_with("msg_wa_test_"));
        assert!(test.starts_with("msg_wa_test_"));
        assert_eq!(native_message_id(&live), Some(id.clone()));
        assert_eq!(native_message_id(&test), Some(id.clone()));
        assert_eq!(native_message_id(id.as_str()), None);

        let media = MediaId::generate();
        let chirp = chirp_media_id(&media);
        let mut ids = Ids::default();
        assert_eq!(ids.upload("media.mediaId", &chirp).unwrap(), media.as_str());
        assert_eq!(ids.upload("media.mediaId", "media_abc123").unwrap_err().rule, "invalid_value");
        assert_eq!(ids.message("replyTo", "wamid.HBgL").unwrap_err().rule, "wamid_not_accepted");
        assert_eq!(ids.in_chirp_words(&format!("'{media}' is gone")), format!("'{chirp}' is gone"));
    }
}
