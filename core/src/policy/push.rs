//! What the push policies say about one push token's enrolment ([`PushEnrolPolicies::read`])
//! and about one push challenge or poll ([`PushAuthPolicies::read`]), typed, with privacyIDEA's
//! defaults filled in; and number matching's options ([`PresenceOptions`]).
//!
//! The action names are privacyIDEA's (`push_*`). Nothing here signs, verifies or sends: the
//! appliance's push service does, with what these readings say.

use super::actions::Scope;
use super::snapshot::{PolicyConflict, PolicyContext, PolicySnapshot};

/// `push_firebase_configuration`'s value for "the phone polls; nothing is sent".
pub const POLL_ONLY: &str = "poll only";

/// privacyIDEA's default `push_ttl`, in minutes.
pub const DEFAULT_TTL_MIN: u32 = 10;

/// privacyIDEA's default question on the phone (`push_text_on_mobile`).
pub const DEFAULT_MOBILE_TEXT: &str = "Do you want to confirm the login?";

/// The default title on the phone (`push_title_on_mobile`; privacyIDEA's is its own name).
pub const DEFAULT_MOBILE_TITLE: &str = "Countersign";

/// privacyIDEA's default message of a push challenge to the login client (`challenge_text`).
pub const DEFAULT_CHALLENGE_TEXT: &str = "Please confirm the authentication on your mobile device!";

/// Which push protocol's names a token speaks: privacyIDEA's `push` (the privacyIDEA
/// Authenticator) or eduMFA's `edupush` (the eduMFA Authenticator, a fork of the same app). The
/// protocol is the same; the token type, serials, policy actions, URI and endpoint are named
/// after each, and number matching is privacyIDEA's only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushFlavour {
    /// privacyIDEA's `push`.
    Push,
    /// eduMFA's `edupush`.
    EduPush,
}

impl PushFlavour {
    /// Every flavour: each has its own endpoint and token type.
    pub const ALL: [PushFlavour; 2] = [PushFlavour::Push, PushFlavour::EduPush];

    /// The flavour of a token type; `None`: not a push type.
    pub fn of_type(token_type: &str) -> Option<PushFlavour> {
        match token_type {
            "push" => Some(PushFlavour::Push),
            "edupush" => Some(PushFlavour::EduPush),
            _ => None,
        }
    }

    /// The token type.
    pub fn token_type(self) -> &'static str {
        match self {
            PushFlavour::Push => "push",
            PushFlavour::EduPush => "edupush",
        }
    }

    /// The serials' prefix.
    pub fn serial_prefix(self) -> &'static str {
        match self {
            PushFlavour::Push => "PIPU",
            PushFlavour::EduPush => "EDUP",
        }
    }

    /// The enrolment URI up to the label.
    pub fn uri_prefix(self) -> &'static str {
        match self {
            PushFlavour::Push => "otpauth://pipush",
            PushFlavour::EduPush => "edumfa-push://edumfa",
        }
    }

    /// The phones' endpoint.
    pub fn endpoint(self) -> &'static str {
        match self {
            PushFlavour::Push => "/ttype/push",
            PushFlavour::EduPush => "/ttype/edupush",
        }
    }

    /// What the first step calls its URI (`pushurl.description`).
    pub fn uri_description(self) -> &'static str {
        match self {
            PushFlavour::Push => "URL for privacyIDEA Push Token",
            PushFlavour::EduPush => "URL for eduMFA Push Token",
        }
    }

    /// The policy action `push_<name>` in this flavour's words (`edupush_<name>`).
    pub fn action(self, name: &str) -> String {
        format!("{}_{name}", self.token_type())
    }

    /// Whether number matching exists (privacyIDEA's only).
    pub fn number_matching(self) -> bool {
        self == PushFlavour::Push
    }
}

/// Reads one scope's actions for one request, each named as privacyIDEA names it (`push_*`)
/// and looked up under `flavour`'s name; other names (`challenge_text`) as they are.
struct Reader<'a> {
    p: &'a PolicySnapshot,
    ctx: &'a PolicyContext<'a>,
    scope: Scope,
    flavour: PushFlavour,
}

impl Reader<'_> {
    fn value(&self, action: &str) -> Result<Option<super::actions::ActionValue>, PolicyConflict> {
        let action = action.strip_prefix("push_").map_or_else(|| action.to_owned(), |n| self.flavour.action(n));
        Ok(self.p.value(self.scope, &action, self.ctx)?.map(|(v, _)| v))
    }

    fn text(&self, action: &str) -> Result<Option<String>, PolicyConflict> {
        Ok(self.value(action)?.and_then(|v| v.as_text().map(str::to_owned)))
    }

    fn int(&self, action: &str) -> Result<Option<i64>, PolicyConflict> {
        Ok(self.value(action)?.and_then(|v| v.as_int()))
    }
}

/// How a push challenge reaches the phone, as the enrolment chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDelivery {
    /// The app polls `/ttype/push`; nothing is sent.
    PollOnly,
    /// Also sent through this FCM gateway.
    Firebase(String),
}

impl PushDelivery {
    /// The policy's (and the token's) word for it.
    pub fn as_str(&self) -> &str {
        match self {
            PushDelivery::PollOnly => POLL_ONLY,
            PushDelivery::Firebase(g) => g,
        }
    }

    /// Reads a stored or configured value; empty means poll only.
    pub fn parse(s: &str) -> PushDelivery {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case(POLL_ONLY) {
            PushDelivery::PollOnly
        } else {
            PushDelivery::Firebase(s.to_owned())
        }
    }
}

/// The enrollment policies' say on one new push token (privacyIDEA's names in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEnrolPolicies {
    /// Where the app posts its second step and polls (`push_registration_url`; no default:
    /// enrolment is refused without it, as in privacyIDEA).
    pub registration_url: Option<String>,
    /// Minutes within which the second step must come (`push_ttl`; 10).
    pub ttl_min: u32,
    /// How challenges reach the phone (`push_firebase_configuration`; poll only).
    pub delivery: PushDelivery,
    /// Whether the app checks the server's certificate while enrolling (`push_ssl_verify`; 1).
    pub ssl_verify: bool,
    /// The app asks for its PIN before accepting (`push_force_app_pin`; off).
    pub force_app_pin: bool,
    /// The owner may then own at most this many push tokens (`push_max_token_per_user`).
    pub max_tokens: Option<i64>,
}

impl PushEnrolPolicies {
    /// The enrollment policies for the request `ctx` describes (the new token's owner), in
    /// `flavour`'s action names (`push_force_app_pin` is both flavours').
    pub fn read(
        p: &PolicySnapshot,
        ctx: &PolicyContext<'_>,
        flavour: PushFlavour,
    ) -> Result<PushEnrolPolicies, PolicyConflict> {
        let r = Reader { p, ctx, scope: Scope::Enrollment, flavour };
        let (text, int) = (|a: &str| r.text(a), |a: &str| r.int(a));
        Ok(PushEnrolPolicies {
            registration_url: text("push_registration_url")?.filter(|u| !u.trim().is_empty()),
            ttl_min: int("push_ttl")?.and_then(|t| u32::try_from(t).ok()).unwrap_or(DEFAULT_TTL_MIN),
            delivery: text("push_firebase_configuration")?
                .map(|s| PushDelivery::parse(&s))
                .unwrap_or(PushDelivery::PollOnly),
            ssl_verify: text("push_ssl_verify")?.is_none_or(|v| v != "0"),
            // eduMFA keeps privacyIDEA's name for this one.
            force_app_pin: p.flag(Scope::Enrollment, "push_force_app_pin", ctx)?,
            max_tokens: int("push_max_token_per_user")?,
        })
    }
}

/// Whether phones may poll (`push_allow_polling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowPolling {
    /// Every push token may poll (the default).
    Allow,
    /// No push token may poll.
    Deny,
    /// A token may poll unless its `polling_allowed` info says false.
    Token,
}

/// Number matching's options (`push_presence_options`, `push_presence_custom_options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceOptions {
    /// A to Z (the default).
    Alphabetic,
    /// 00 to 99.
    Numeric,
    /// The admin's, each once.
    Custom(Vec<String>),
}

impl PresenceOptions {
    /// Every option to choose from.
    pub fn all(&self) -> Vec<String> {
        match self {
            PresenceOptions::Alphabetic => ('A'..='Z').map(String::from).collect(),
            PresenceOptions::Numeric => (0..100).map(|n| format!("{n:02}")).collect(),
            PresenceOptions::Custom(o) => o.clone(),
        }
    }
}

/// The authentication policies' say on one push challenge, poll or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushAuthPolicies {
    /// The question on the phone, a template (`push_text_on_mobile`).
    pub mobile_text: String,
    /// The title on the phone (`push_title_on_mobile`).
    pub mobile_title: String,
    /// Whether the app checks the server's certificate when answering (`push_ssl_verify`; 1).
    pub ssl_verify: bool,
    /// Seconds a check with the PIN waits for the tap (`push_wait`; none: it answers with a
    /// challenge).
    pub wait_s: Option<u32>,
    /// Whether phones may poll (`push_allow_polling`; allow).
    pub allow_polling: AllowPolling,
    /// Number matching (`push_require_presence`; off).
    pub require_presence: bool,
    /// Its options (`push_presence_options`; alphabetic).
    pub presence_options: PresenceOptions,
    /// How many are shown (`push_presence_num_options`; 3), at most as many as there are.
    pub presence_count: usize,
    /// The message to the login client (`challenge_text`; privacyIDEA's default).
    pub challenge_text: String,
}

impl PushAuthPolicies {
    /// The authentication policies for the request `ctx` describes (the token's owner), in
    /// `flavour`'s action names; `challenge_text` is both flavours'.
    pub fn read(
        p: &PolicySnapshot,
        ctx: &PolicyContext<'_>,
        flavour: PushFlavour,
    ) -> Result<PushAuthPolicies, PolicyConflict> {
        let r = Reader { p, ctx, scope: Scope::Authentication, flavour };
        let (text, int) = (|a: &str| r.text(a), |a: &str| r.int(a));
        let presence_options = match text("push_presence_options")?.as_deref() {
            Some("NUMERIC") => PresenceOptions::Numeric,
            Some("CUSTOM") => {
                let custom = custom_options(text("push_presence_custom_options")?.as_deref().unwrap_or_default());
                if custom.len() >= 2 {
                    PresenceOptions::Custom(custom)
                } else {
                    // As privacyIDEA: without usable custom options, the letters.
                    PresenceOptions::Alphabetic
                }
            }
            _ => PresenceOptions::Alphabetic,
        };
        let available = presence_options.all().len();
        let presence_count =
            int("push_presence_num_options")?.and_then(|n| usize::try_from(n).ok()).unwrap_or(3).min(available);
        Ok(PushAuthPolicies {
            mobile_text: text("push_text_on_mobile")?.unwrap_or_else(|| DEFAULT_MOBILE_TEXT.to_owned()),
            mobile_title: text("push_title_on_mobile")?.unwrap_or_else(|| DEFAULT_MOBILE_TITLE.to_owned()),
            ssl_verify: text("push_ssl_verify")?.is_none_or(|v| v != "0"),
            wait_s: int("push_wait")?.and_then(|w| u32::try_from(w).ok()),
            allow_polling: match text("push_allow_polling")?.as_deref() {
                Some("deny") => AllowPolling::Deny,
                Some("token") => AllowPolling::Token,
                _ => AllowPolling::Allow,
            },
            require_presence: flavour.number_matching()
                && p.flag(Scope::Authentication, "push_require_presence", ctx)?,
            presence_options,
            presence_count,
            challenge_text: text("challenge_text")?
                .map(|m| m.replace("\\,", ","))
                .unwrap_or_else(|| DEFAULT_CHALLENGE_TEXT.to_owned()),
        })
    }
}

/// Custom options as the admin wrote them (`01:02:1A`): trimmed, empty ones and repeats
/// dropped, a comma refused in none (options travel comma-separated to the phone, so a
/// comma inside one is dropped).
fn custom_options(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in s.split(':').map(str::trim) {
        if !o.is_empty() && !o.contains(',') && !out.iter().any(|x| x == o) {
            out.push(o.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::super::record::PolicyRecord;
    use super::*;

    fn snapshot(scope: &str, actions: serde_json::Value) -> PolicySnapshot {
        let p = PolicyRecord::new("p", scope, actions.as_object().unwrap().clone());
        PolicySnapshot::build(&[p]).unwrap()
    }

    fn ctx() -> PolicyContext<'static> {
        PolicyContext::for_request(Some("alice"), Some("corp"), None, &crate::caller::Caller::uid(0), 0, 0)
    }

    #[test]
    fn without_policies_privacyideas_defaults_apply_and_no_url_means_no_enrolment() {
        let p = PolicySnapshot::build(&[]).unwrap();
        let e = PushEnrolPolicies::read(&p, &ctx(), PushFlavour::Push).unwrap();
        assert_eq!(e.registration_url, None);
        assert_eq!(
            (e.ttl_min, e.delivery.clone(), e.ssl_verify, e.force_app_pin),
            (10, PushDelivery::PollOnly, true, false)
        );
        let a = PushAuthPolicies::read(&p, &ctx(), PushFlavour::Push).unwrap();
        assert_eq!(a.mobile_text, DEFAULT_MOBILE_TEXT);
        assert_eq!(
            (a.wait_s, a.allow_polling, a.require_presence, a.presence_count),
            (None, AllowPolling::Allow, false, 3)
        );
        assert_eq!(a.challenge_text, DEFAULT_CHALLENGE_TEXT);
    }

    #[test]
    fn enrolment_values_are_read() {
        let p = snapshot(
            "enrollment",
            serde_json::json!({"push_registration_url": "https://cs.example/ttype/push", "push_ttl": 2,
                "push_firebase_configuration": "fcm-prod", "push_ssl_verify": "0", "push_force_app_pin": true}),
        );
        let e = PushEnrolPolicies::read(&p, &ctx(), PushFlavour::Push).unwrap();
        assert_eq!(e.registration_url.as_deref(), Some("https://cs.example/ttype/push"));
        assert_eq!((e.ttl_min, e.ssl_verify, e.force_app_pin), (2, false, true));
        assert_eq!(e.delivery, PushDelivery::Firebase("fcm-prod".into()));
        assert_eq!(PushDelivery::parse("Poll Only"), PushDelivery::PollOnly);
        // eduMFA's token reads its own names, and privacyIDEA's are not its.
        let edu = PushEnrolPolicies::read(&p, &ctx(), PushFlavour::EduPush).unwrap();
        assert_eq!((edu.registration_url, edu.ttl_min, edu.force_app_pin), (None, 10, true));
        let p = snapshot(
            "enrollment",
            serde_json::json!({"edupush_registration_url": "https://cs.example/ttype/edupush",
            "edupush_ttl": 3}),
        );
        let edu = PushEnrolPolicies::read(&p, &ctx(), PushFlavour::EduPush).unwrap();
        assert_eq!((edu.registration_url.as_deref(), edu.ttl_min), (Some("https://cs.example/ttype/edupush"), 3));
        assert_eq!(PushEnrolPolicies::read(&p, &ctx(), PushFlavour::Push).unwrap().registration_url, None);
    }

    #[test]
    fn edupush_has_no_number_matching_and_its_own_names() {
        let p = snapshot(
            "authentication",
            serde_json::json!({"push_require_presence": true, "edupush_wait": 5,
            "edupush_text_on_mobile": "Sign in?"}),
        );
        let a = PushAuthPolicies::read(&p, &ctx(), PushFlavour::EduPush).unwrap();
        assert_eq!((a.require_presence, a.wait_s, a.mobile_text.as_str()), (false, Some(5), "Sign in?"));
        let b = PushAuthPolicies::read(&p, &ctx(), PushFlavour::Push).unwrap();
        assert_eq!((b.require_presence, b.wait_s, b.mobile_text.as_str()), (true, None, DEFAULT_MOBILE_TEXT));
        assert_eq!(PushFlavour::of_type("edupush").map(PushFlavour::endpoint), Some("/ttype/edupush"));
        assert_eq!(PushFlavour::of_type("hotp"), None);
    }

    #[test]
    fn presence_options_follow_the_policies() {
        let read = |a: serde_json::Value| {
            PushAuthPolicies::read(&snapshot("authentication", a), &ctx(), PushFlavour::Push).unwrap()
        };
        let a = read(serde_json::json!({"push_require_presence": true, "push_presence_options": "NUMERIC",
            "push_presence_num_options": 5, "push_wait": 20, "push_allow_polling": "token"}));
        assert!(a.require_presence);
        assert_eq!((a.presence_options.all().len(), a.presence_count), (100, 5));
        assert_eq!((a.wait_s, a.allow_polling), (Some(20), AllowPolling::Token));
        let c = read(
            serde_json::json!({"push_presence_options": "CUSTOM", "push_presence_custom_options": "01: 02:01::x,y:1A",
            "push_presence_num_options": 10}),
        );
        assert_eq!(c.presence_options, PresenceOptions::Custom(vec!["01".into(), "02".into(), "1A".into()]));
        assert_eq!(c.presence_count, 3, "never more than there are");
        let fallback =
            read(serde_json::json!({"push_presence_options": "CUSTOM", "push_presence_custom_options": "only"}));
        assert_eq!(fallback.presence_options, PresenceOptions::Alphabetic);
    }
}
