//! What a Graph API error means for the message that got it: try again later (and perhaps send
//! slower), pause the account, or fail the message. Decided by Meta's `code`, as Meta advises
//! (`error-codes.mdx`: "build your app's error handling around error codes"), never by its title.

/// The class of a Graph API error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 130429 "Rate limit hit": the number's throughput is reached. Try again later, and send
    /// slower.
    Throttled,
    /// 131056 "pair rate limit hit": too many messages to this recipient in a short time. Try
    /// again after 4^X seconds, as Meta advises; other recipients are not held up.
    PairRate,
    /// Meta cannot take the request now, and says to try again: 1 API Unknown (possible server
    /// error), 2 API Service (downtime or overload), 4 API Too Many Calls (the app's call rate),
    /// 80007 (the WABA's call rate), 131000 Something went wrong, 131016 Service unavailable,
    /// 131057 maintenance mode (during a throughput upgrade), 133004 Server temporarily
    /// unavailable.
    Transient,
    /// The account, not the message, is at fault: its token, permissions, standing, payment or
    /// number registration. Every message would fail alike, so sending pauses until the account
    /// is fixed: 0 AuthException, 3 capability, 10 permission denied, 190 access token expired,
    /// 200–299 API permission, 368 blocked for policy violations, 131031 account locked, 131037
    /// display name not approved, 131042 payment issue, 131045 incorrect certificate (number
    /// registration), 133010 number not registered.
    AccountBlocked,
    /// Anything else: this message cannot go (a parameter, template, recipient or policy is at
    /// fault), and would fail again the same way.
    Permanent,
}

impl ErrorClass {
    /// The class of Meta's error `code`.
    pub fn of(code: i64) -> Self {
        match code {
            130_429 => Self::Throttled,
            131_056 => Self::PairRate,
            1 | 2 | 4 | 80_007 | 131_000 | 131_016 | 131_057 | 133_004 => Self::Transient,
            0 | 3 | 10 | 190 | 200..=299 | 368 | 131_031 | 131_037 | 131_042 | 131_045 | 133_010 => {
                Self::AccountBlocked
            }
            _ => Self::Permanent,
        }
    }

    /// The class of an answer whose body is not a Graph error (a proxy's, an outage page): too
    /// many requests and server errors pass, anything else would be answered alike again.
    pub fn of_http_status(status: u16) -> Self {
        if status == 429 || (500..600).contains(&status) { Self::Transient } else { Self::Permanent }
    }

    /// Whether the same request may succeed later.
    pub fn is_retried(self) -> bool {
        matches!(self, Self::Throttled | Self::PairRate | Self::Transient)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::*;
    use super::*;

    /// Every code `error-codes.mdx` documents.
    #[test]
    fn every_documented_code_has_its_class() {
        let classes: &[(i64, ErrorClass)] = &[
            // Authorization.
            (0, AccountBlocked),
            (3, AccountBlocked),
            (10, AccountBlocked),
            (190, AccountBlocked),
            (200, AccountBlocked),
            (250, AccountBlocked),
            (299, AccountBlocked),
            // Integrity.
            (368, AccountBlocked),
            (130_497, Permanent),
            (131_031, AccountBlocked),
            // Templates, phone migration, template insights, WABA and synchronization.
            (2_388_040, Permanent),
            (2_388_047, Permanent),
            (2_388_072, Permanent),
            (2_388_073, Permanent),
            (2_388_293, Permanent),
            (2_388_299, Permanent),
            (2_388_019, Permanent),
            (2_388_001, Permanent),
            (2_388_012, Permanent),
            (2_388_091, Permanent),
            (2_388_093, Permanent),
            (2_388_103, Permanent),
            (2_494_100, Permanent),
            (200_005, Permanent),
            (200_006, Permanent),
            (200_007, Permanent),
            (2_593_079, Permanent),
            (2_593_085, Permanent),
            (2_593_107, Permanent),
            (2_593_108, Permanent),
            // Throttling.
            (4, Transient),
            (80_007, Transient),
            (130_429, Throttled),
            (131_048, Permanent),
            (131_056, PairRate),
            (133_016, Permanent),
            // Other.
            (1, Transient),
            (2, Transient),
            (33, Permanent),
            (100, Permanent),
            (130_472, Permanent),
            (131_000, Transient),
            (131_005, Permanent),
            (131_008, Permanent),
            (131_009, Permanent),
            (131_016, Transient),
            (131_021, Permanent),
            (131_026, Permanent),
            (131_037, AccountBlocked),
            (131_042, AccountBlocked),
            (131_045, AccountBlocked),
            (131_047, Permanent),
            (131_049, Permanent),
            (131_050, Permanent),
            (131_051, Permanent),
            (131_052, Permanent),
            (131_053, Permanent),
            (131_057, Transient),
            (132_000, Permanent),
            (132_001, Permanent),
            (132_005, Permanent),
            (132_007, Permanent),
            (132_012, Permanent),
            (132_015, Permanent),
            (132_016, Permanent),
            (132_068, Permanent),
            (132_069, Permanent),
            (133_000, Permanent),
            (133_004, Transient),
            (133_005, Permanent),
            (133_006, Permanent),
            (133_008, Permanent),
            (133_009, Permanent),
            (133_010, AccountBlocked),
            (133_015, Permanent),
            (134_011, Permanent),
            (135_000, Permanent),
            // Marketing Messages API.
            (131_055, Permanent),
            (134_100, Permanent),
            (134_101, Permanent),
            (134_102, Permanent),
            (1_752_041, Permanent),
        ];
        for &(code, class) in classes {
            assert_eq!(ErrorClass::of(code), class, "code {code}");
        }
        // Codes Meta does not document fail the message.
        for code in [-1, 5, 199, 300, 999_999] {
            assert_eq!(ErrorClass::of(code), Permanent, "code {code}");
        }
    }

    #[test]
    fn what_is_retried() {
        let retried: Vec<_> = [Throttled, PairRate, Transient, AccountBlocked, Permanent]
            .into_iter()
            .filter(|c| c.is_retried())
            .collect();
        assert_eq!(retried, [Throttled, PairRate, Transient]);
    }

    #[test]
    fn answers_without_a_graph_error_are_classed_by_status() {
        for status in [429, 500, 502, 503, 599] {
            assert_eq!(ErrorClass::of_http_status(status), Transient, "{status}");
        }
        for status in [400, 401, 403, 404, 413, 600] {
            assert_eq!(ErrorClass::of_http_status(status), Permanent, "{status}");
        }
    }
}
