//! Meta's limits on sending: a number's throughput level (messages per second, `throughput.mdx`)
//! and its business portfolio's messaging tier (unique users reached outside the customer-service
//! window per moving 24 hours, `messaging-limits.mdx`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number's `throughput.level`, as `GET /{phone-number-id}?fields=throughput` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ThroughputLevel {
    /// `STANDARD`: every number's default, 80 messages per second.
    Standard,
    /// `HIGH`: 1,000 per second, after Meta's automatic upgrade (a `THROUGHPUT_UPGRADE` event).
    High,
    /// A number shared with the WhatsApp Business app (coexistence): a fixed 20 per second.
    /// Meta documents no name for it, so a level naming `COEXIST` or `BUSINESS_APP` is taken as
    /// this one, and its name kept.
    BusinessApp(String),
    /// A level wagate does not know, kept as Meta named it: the configured default rate applies.
    Unknown(String),
}

impl ThroughputLevel {
    /// Never fails: Meta may add levels, and a number must stay usable when it does.
    pub fn parse(s: &str) -> Self {
        match s {
            "STANDARD" => Self::Standard,
            "HIGH" => Self::High,
            _ if s.contains("COEXIST") || s.contains("BUSINESS_APP") => Self::BusinessApp(s.to_owned()),
            _ => Self::Unknown(s.to_owned()),
        }
    }

    /// Meta's name for the level.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Standard => "STANDARD",
            Self::High => "HIGH",
            Self::BusinessApp(name) | Self::Unknown(name) => name,
        }
    }

    /// What Meta allows at this level; `None` for a level wagate does not know.
    pub fn messages_per_second(&self) -> Option<u32> {
        match self {
            Self::Standard => Some(80),
            Self::High => Some(1_000),
            Self::BusinessApp(_) => Some(20),
            Self::Unknown(_) => None,
        }
    }
}

impl fmt::Display for ThroughputLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ThroughputLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ThroughputLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// A business portfolio's messaging limit: how many unique users it may reach outside their
/// customer-service windows in a moving 24 hours (`whatsapp_business_manager_messaging_limit`,
/// and `max_daily_conversations_per_business` in `phone_number_quality_update` webhooks).
/// Meta's `TIER_NOT_SET` (a number that has sent nothing yet) names no tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessagingTier {
    Tier50,
    /// Where new business portfolios start.
    Tier250,
    Tier1K,
    Tier2K,
    Tier10K,
    Tier100K,
    Unlimited,
}

impl MessagingTier {
    pub const ALL: [Self; 7] =
        [Self::Tier50, Self::Tier250, Self::Tier1K, Self::Tier2K, Self::Tier10K, Self::Tier100K, Self::Unlimited];

    /// Meta's name for the tier.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tier50 => "TIER_50",
            Self::Tier250 => "TIER_250",
            Self::Tier1K => "TIER_1K",
            Self::Tier2K => "TIER_2K",
            Self::Tier10K => "TIER_10K",
            Self::Tier100K => "TIER_100K",
            Self::Unlimited => "TIER_UNLIMITED",
        }
    }

    /// The tier Meta names `s` (exactly, as Meta writes it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Unique users per moving 24 hours; `None`: unlimited.
    pub const fn limit(self) -> Option<u64> {
        match self {
            Self::Tier50 => Some(50),
            Self::Tier250 => Some(250),
            Self::Tier1K => Some(1_000),
            Self::Tier2K => Some(2_000),
            Self::Tier10K => Some(10_000),
            Self::Tier100K => Some(100_000),
            Self::Unlimited => None,
        }
    }
}

impl fmt::Display for MessagingTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of Meta's messaging tiers. Says which names are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotATier;

impl fmt::Display for NotATier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("must be one of ")?;
        for (i, t) in MessagingTier::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(t.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for NotATier {}

impl FromStr for MessagingTier {
    type Err = NotATier;

    fn from_str(s: &str) -> Result<Self, NotATier> {
        Self::parse(s).ok_or(NotATier)
    }
}

impl Serialize for MessagingTier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessagingTier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e| serde::de::Error::custom(format!("'{s}' is not a messaging tier: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_from_metas_names_and_keep_unknown_ones() {
        assert_eq!(ThroughputLevel::parse("STANDARD"), ThroughputLevel::Standard);
        assert_eq!(ThroughputLevel::parse("HIGH"), ThroughputLevel::High);
        assert_eq!(ThroughputLevel::parse("COEXISTENCE"), ThroughputLevel::BusinessApp("COEXISTENCE".into()));
        assert_eq!(
            ThroughputLevel::parse("SHARED_WITH_BUSINESS_APP"),
            ThroughputLevel::BusinessApp("SHARED_WITH_BUSINESS_APP".into())
        );
        assert_eq!(ThroughputLevel::parse("ULTRA"), ThroughputLevel::Unknown("ULTRA".into()));
        assert_eq!(ThroughputLevel::parse("standard"), ThroughputLevel::Unknown("standard".into()), "Meta's case");
        for name in ["STANDARD", "HIGH", "COEXISTENCE", "ULTRA", ""] {
            assert_eq!(ThroughputLevel::parse(name).as_str(), name, "the name is kept");
        }
    }

    #[test]
    fn levels_say_their_rate() {
        assert_eq!(ThroughputLevel::Standard.messages_per_second(), Some(80));
        assert_eq!(ThroughputLevel::High.messages_per_second(), Some(1_000));
        assert_eq!(ThroughputLevel::parse("COEXISTENCE").messages_per_second(), Some(20));
        assert_eq!(ThroughputLevel::parse("ULTRA").messages_per_second(), None);
    }

    #[test]
    fn levels_are_json_strings() {
        let level: ThroughputLevel = serde_json::from_str(r#""ULTRA""#).unwrap();
        assert_eq!(level, ThroughputLevel::Unknown("ULTRA".into()));
        assert_eq!(serde_json::to_string(&ThroughputLevel::High).unwrap(), r#""HIGH""#);
    }

    #[test]
    fn tiers_parse_from_metas_names_with_their_limits() {
        let expected = [
            ("TIER_50", Some(50)),
            ("TIER_250", Some(250)),
            ("TIER_1K", Some(1_000)),
            ("TIER_2K", Some(2_000)),
            ("TIER_10K", Some(10_000)),
            ("TIER_100K", Some(100_000)),
            ("TIER_UNLIMITED", None),
        ];
        for (name, limit) in expected {
            let tier = MessagingTier::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!((tier.as_str(), tier.limit()), (name, limit));
            assert_eq!(tier.to_string(), name);
        }
        assert_eq!(MessagingTier::ALL.len(), expected.len());
    }

    #[test]
    fn unknown_tiers_are_refused_naming_the_known_ones() {
        for name in ["TIER_NOT_SET", "TIER_5K", "tier_250", ""] {
            assert_eq!(MessagingTier::parse(name), None, "{name}");
        }
        let e = "TIER_5K".parse::<MessagingTier>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "must be one of TIER_50, TIER_250, TIER_1K, TIER_2K, TIER_10K, TIER_100K, TIER_UNLIMITED"
        );
        let e = serde_json::from_str::<MessagingTier>(r#""TIER_5K""#).unwrap_err().to_string();
        assert!(e.contains("'TIER_5K' is not a messaging tier: must be one of TIER_50"), "{e}");
        assert_eq!(serde_json::from_str::<MessagingTier>(r#""TIER_2K""#).unwrap(), MessagingTier::Tier2K);
    }
}
