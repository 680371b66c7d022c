//! Campaigns: one template sent to many recipients, paced, paused and resumed, each recipient's
//! progress told by the message it was sent as.

use std::fmt;

use crate::error_class::ErrorClass;
use crate::message::MessageError;
use crate::status::MessageStatus;

/// Where a campaign is in its life: `draft` → (`scheduled` →) `running` ⇄ `paused` →
/// `completed`, or `canceled` from any state before `completed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
    Canceled,
}

impl CampaignState {
    pub const ALL: [Self; 6] =
        [Self::Draft, Self::Scheduled, Self::Running, Self::Paused, Self::Completed, Self::Canceled];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Completed and canceled campaigns change no more.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Canceled)
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a campaign is paused. Only `requested` waits for a person; `awaiting_quota` resumes by
/// itself when the messaging limit allows; the others wait for their cause to be fixed and a
/// `resume`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PauseReason {
    /// `POST /v1/campaigns/{id}/pause`.
    Requested,
    /// The business has reached its messaging limit (unique customers outside the 24-hour window
    /// per rolling 24 hours).
    AwaitingQuota,
    /// Meta paused the template for its quality.
    TemplatePaused,
    /// Meta disabled the template, or it is no longer approved.
    TemplateUnavailable,
    /// Meta flagged the number's quality, or lowered its messaging limit.
    QualityDropped,
    /// The account is paused: Meta refused it for an account-level reason.
    AccountPaused,
    /// More of the campaign's sends failed than its `max_failure_share` allows.
    TooManyFailures,
}

impl PauseReason {
    pub const ALL: [Self; 7] = [
        Self::Requested,
        Self::AwaitingQuota,
        Self::TemplatePaused,
        Self::TemplateUnavailable,
        Self::QualityDropped,
        Self::AccountPaused,
        Self::TooManyFailures,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::AwaitingQuota => "awaiting_quota",
            Self::TemplatePaused => "template_paused",
            Self::TemplateUnavailable => "template_unavailable",
            Self::QualityDropped => "quality_dropped",
            Self::AccountPaused => "account_paused",
            Self::TooManyFailures => "too_many_failures",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Where a recipient is, as the API shows it: `pending` (not fed to the queue yet), `queued`
/// (in the number's queue), then its message's progress (`accepted` … `read`), or `failed`
/// (Meta or wagate refused it) or `skipped` (never sent: opted out, invalid, canceled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecipientStatus {
    Pending,
    Queued,
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed,
    Skipped,
}

impl RecipientStatus {
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Queued,
        Self::Accepted,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Skipped,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Accepted => "accepted",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// A recipient's status given its message's: a message not handed to Meta yet is `queued`,
    /// `played` counts as `read`, and a message canceled before it went was `skipped`.
    pub const fn of_message(status: MessageStatus) -> Self {
        match status {
            MessageStatus::Scheduled | MessageStatus::Queued | MessageStatus::Sending => Self::Queued,
            MessageStatus::Accepted => Self::Accepted,
            MessageStatus::Sent => Self::Sent,
            MessageStatus::Delivered => Self::Delivered,
            MessageStatus::Read | MessageStatus::Played => Self::Read,
            MessageStatus::Failed => Self::Failed,
            MessageStatus::Canceled | MessageStatus::Received => Self::Skipped,
        }
    }

    /// Done: nothing more happens to it unless it is retried.
    pub const fn is_settled(self) -> bool {
        !matches!(self, Self::Pending | Self::Queued)
    }
}

impl fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a recipient was skipped.
pub mod skip {
    /// The customer stopped marketing messages, and the template is a MARKETING one.
    pub const OPTED_OUT: &str = "opted_out";
    /// Its parameters do not fit the template, or the number is not one.
    pub const INVALID: &str = "invalid";
    /// The campaign was canceled before it was sent.
    pub const CANCELED: &str = "canceled";
    /// Outside the 24-hour window, and wagate is configured to refuse such sends.
    pub const OUTSIDE_WINDOW: &str = "outside_window";
}

/// Whether a failed send may succeed if sent again: what Meta classes as worth retrying (its
/// throughput, the pair rate, its own outages), a per-user marketing limit (131049: Meta says to
/// try later), a template Meta had paused (132015: it may be reinstated), an account-level refusal (fixed since, or the campaign would not be resumed), and
/// the gateway's own failures that are not about the message (the network, an expiry). Never
/// `unknown_outcome`: Meta may have taken that message, and a retry could send it twice.
pub fn is_retryable(error: &MessageError) -> bool {
    match error.code {
        Some(131_049 | 132_015) => true,
        Some(code) => matches!(ErrorClass::of(code), ErrorClass::AccountBlocked) || ErrorClass::of(code).is_retried(),
        None => matches!(error.reason.as_deref(), Some("network_error" | "http_error" | "expired")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in CampaignState::ALL {
            assert_eq!(CampaignState::parse(s.as_str()), Some(s));
        }
        for r in PauseReason::ALL {
            assert_eq!(PauseReason::parse(r.as_str()), Some(r));
        }
        for r in RecipientStatus::ALL {
            assert_eq!(RecipientStatus::parse(r.as_str()), Some(r));
        }
        assert_eq!(CampaignState::parse("Running"), None);
    }

    #[test]
    fn a_recipient_follows_its_message() {
        assert_eq!(RecipientStatus::of_message(MessageStatus::Sending), RecipientStatus::Queued);
        assert_eq!(RecipientStatus::of_message(MessageStatus::Played), RecipientStatus::Read);
        assert_eq!(RecipientStatus::of_message(MessageStatus::Canceled), RecipientStatus::Skipped);
        assert!(!RecipientStatus::Queued.is_settled());
        assert!(RecipientStatus::Failed.is_settled());
    }

    #[test]
    fn retries_what_may_succeed_later() {
        let meta = |code| MessageError { code: Some(code), ..MessageError::gateway("x", "y") };
        assert!(is_retryable(&meta(131_049)));
        assert!(is_retryable(&meta(132_015)), "a paused template may be reinstated");
        assert!(!is_retryable(&meta(132_016)), "a disabled one is not");
        assert!(is_retryable(&meta(130_429)));
        assert!(is_retryable(&meta(131_000)));
        assert!(!is_retryable(&meta(131_026)), "undeliverable stays undeliverable");
        assert!(!is_retryable(&meta(132_001)), "a template that does not exist");
        assert!(is_retryable(&MessageError::gateway("network_error", "connection reset")));
        assert!(!is_retryable(&MessageError::gateway("canceled", "cancelled")));
        assert!(!is_retryable(&MessageError::gateway("unknown_outcome", "timed out after sending")));
    }
}
