//! Files the business uploads to send: the types Meta takes, each with its size limit
//! (`business-phone-numbers/media.md`), told from what the file says it is and what its first
//! bytes show.

use crate::validation::FieldError;

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

/// A media type Meta takes, the message type that sends it, and its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaType {
    pub mime_type: &'static str,
    /// `image`, `audio`, `video`, `document` or `sticker`.
    pub kind: &'static str,
    pub max_bytes: u64,
}

const fn t(mime_type: &'static str, kind: &'static str, max_bytes: u64) -> MediaType {
    MediaType { mime_type, kind, max_bytes }
}

/// Every type Meta takes. Stickers (WebP) may have 100 KB, or 500 KB when animated.
pub const TYPES: &[MediaType] = &[
    t("image/jpeg", "image", 5 * MB),
    t("image/png", "image", 5 * MB),
    t("image/webp", "sticker", 500 * KB),
    t("video/mp4", "video", 16 * MB),
    t("video/3gpp", "video", 16 * MB),
    t("audio/aac", "audio", 16 * MB),
    t("audio/amr", "audio", 16 * MB),
    t("audio/mpeg", "audio", 16 * MB),
    t("audio/mp4", "audio", 16 * MB),
    t("audio/ogg", "audio", 16 * MB),
    t("text/plain", "document", 100 * MB),
    t("application/pdf", "document", 100 * MB),
    t("application/msword", "document", 100 * MB),
    t("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "document", 100 * MB),
    t("application/vnd.ms-excel", "document", 100 * MB),
    t("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "document", 100 * MB),
    t("application/vnd.ms-powerpoint", "document", 100 * MB),
    t("application/vnd.openxmlformats-officedocument.presentationml.presentation", "document", 100 * MB),
];

/// The largest file any type takes.
pub const MAX_BYTES: u64 = 100 * MB;
/// A static (not animated) sticker.
const STATIC_STICKER_MAX: u64 = 100 * KB;

/// What a file's first bytes show it to be, for the types whose bytes say so.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    Some(if at(0, b"\xFF\xD8\xFF") {
        "image/jpeg"
    } else if at(0, b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        "image/webp"
    } else if at(0, b"%PDF-") {
        "application/pdf"
    } else if at(0, b"OggS") {
        "audio/ogg"
    } else if at(0, b"#!AMR") {
        "audio/amr"
    } else if at(0, b"ID3") {
        "audio/mpeg"
    } else if at(4, b"ftyp3gp") {
        "video/3gpp"
    } else if at(4, b"ftypM4A") {
        "audio/mp4"
    } else if at(4, b"ftyp") {
        "video/mp4"
    } else {
        return None;
    })
}

/// The families whose bytes may be told apart only roughly: an MP4 container holds video or
/// audio, an Office file is a ZIP or an OLE file, a text file has no magic at all.
fn compatible(declared: &str, sniffed: &str) -> bool {
    declared == sniffed
        || (declared.starts_with("audio/") && sniffed == "video/mp4" && declared == "audio/mp4")
        || (declared == "video/3gpp" && sniffed == "video/mp4")
        || (declared == "audio/aac" && sniffed == "video/mp4")
}

/// Whether a WebP file is animated (its extended header says so, or it has animation chunks).
fn animated_webp(bytes: &[u8]) -> bool {
    let vp8x_animated = bytes.get(12..16) == Some(b"VP8X") && bytes.get(20).is_some_and(|flags| flags & 0x02 != 0);
    vp8x_animated || bytes.windows(4).take(4096).any(|w| w == b"ANIM")
}

fn megabytes(n: u64) -> String {
    if n >= MB { format!("{} MB", n / MB) } else { format!("{} KB", n / KB) }
}

/// Checks a file the business uploads: its type (`declared`, or what its bytes show when it
/// declares none) is one Meta takes, its bytes do not contradict it, and it is within that
/// type's limit. `path` names the field in errors.
pub fn check_upload(path: &str, declared: Option<&str>, bytes: &[u8]) -> Result<MediaType, FieldError> {
    if bytes.is_empty() {
        return Err(FieldError::new(path, "empty_file", "is empty"));
    }
    let sniffed = sniff(bytes);
    let declared = declared
        .map(|d| d.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty() && d != "application/octet-stream");
    let mime = match (&declared, sniffed) {
        (Some(d), _) => d.clone(),
        (None, Some(s)) => s.to_owned(),
        (None, None) => {
            return Err(FieldError::new(
                path,
                "unsupported_media_type",
                "has no type and its bytes do not show one: give its content type (image/jpeg, application/pdf, …)",
            ));
        }
    };
    let Some(found) = TYPES.iter().find(|t| t.mime_type == mime) else {
        let all: Vec<&str> = TYPES.iter().map(|t| t.mime_type).collect();
        return Err(FieldError::new(
            path,
            "unsupported_media_type",
            format!("is {mime}, which WhatsApp does not take (it takes {})", all.join(", ")),
        ));
    };
    if let Some(s) = sniffed
        && !compatible(&mime, s)
    {
        return Err(FieldError::new(path, "media_type_mismatch", format!("says it is {mime} but its bytes are {s}")));
    }
    let size = bytes.len() as u64;
    let max = if found.kind == "sticker" && !animated_webp(bytes) { STATIC_STICKER_MAX } else { found.max_bytes };
    if size > max {
        let what = if found.kind == "sticker" && max == STATIC_STICKER_MAX { "a static sticker" } else { found.kind };
        return Err(FieldError::new(
            path,
            "too_large",
            format!("has {size} bytes; WhatsApp takes {what} ({mime}) of up to {}", megabytes(max)),
        ));
    }
    Ok(*found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_sizes_and_bytes_are_checked() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        assert_eq!(check_upload("file", Some("image/png"), png).unwrap().kind, "image");
        assert_eq!(check_upload("file", None, png).unwrap().mime_type, "image/png");
        assert_eq!(check_upload("file", Some("image/jpeg"), png).unwrap_err().rule, "media_type_mismatch");
        assert_eq!(check_upload("file", Some("image/gif"), b"GIF89a").unwrap_err().rule, "unsupported_media_type");
        assert_eq!(check_upload("file", None, b"hello").unwrap_err().rule, "unsupported_media_type");
        assert_eq!(check_upload("file", Some("text/plain"), b"hello").unwrap().kind, "document");
        assert_eq!(check_upload("file", Some("image/png"), b"").unwrap_err().rule, "empty_file");
        let mut big = png.to_vec();
        big.resize(5 * 1024 * 1024 + 1, 0);
        let e = check_upload("file", Some("image/png"), &big).unwrap_err();
        assert_eq!((e.rule, e.message.contains("5 MB")), ("too_large", true), "{e}");
        let mut sticker = b"RIFF\0\0\0\0WEBPVP8 ".to_vec();
        sticker.resize(150 * 1024, 0);
        assert!(check_upload("file", Some("image/webp"), &sticker).unwrap_err().message.contains("100 KB"));
        let mut animated = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\x02".to_vec();
        animated.resize(150 * 1024, 0);
        assert_eq!(check_upload("file", Some("image/webp"), &animated).unwrap().kind, "sticker");
        assert_eq!(check_upload("file", Some("image/png; charset=binary"), png).unwrap().mime_type, "image/png");
    }
}
