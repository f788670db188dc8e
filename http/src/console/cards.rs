//! Enrolling a card in one of the appliance's own readers for a user, from the user's page: a
//! PIV certificate (the HSM CA issues it) or an OATH TOTP/HOTP credential on a YubiKey. The
//! page lists the readers and what is in them; the enrolment's answer is an HTML page that
//! grows as the card work proceeds (each step flushed as it happens, so the admin at the reader
//! sees the progress live without any script), then shows the outcome, with a PIN the
//! appliance chose shown this once.
//!
//! Judged like any enrolment: the role in the user's realm, then the admin policy of the kind
//! (`enrollCERTIFICATE`, `enrollTOTP`, `enrollHOTP`); the engine (`EnrolmentService`) does the
//! card work and writes the audit under the console user. Must never: put a PIN, PUK or key in
//! a URL or a log, or talk to a card itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign::console_access::{ConsoleSession, ConsoleUser, Power};
use countersign::devices::ReaderInfo;
use countersign::enrolment::{EnrolError, EnrolOutcome, OathEnrolRequest, PivEnrolRequest, Progress};
use maud::{html, Markup, PreEscaped};
use secrecy::{ExposeSecret, SecretString};

use super::layout::{self, segment as enc, Nav};
use super::session::{FormFields, Signed};
use super::users::policy_allows;
use crate::SharedState;

/// What the console enrols on a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CardKind {
    Piv,
    OathTotp,
    OathHotp,
}

impl CardKind {
    const ALL: [CardKind; 3] = [CardKind::Piv, CardKind::OathTotp, CardKind::OathHotp];

    fn name(self) -> &'static str {
        match self {
            CardKind::Piv => "piv",
            CardKind::OathTotp => "oath-totp",
            CardKind::OathHotp => "oath-hotp",
        }
    }

    fn label(self) -> &'static str {
        match self {
            CardKind::Piv => "PIV certificate (smart-card sign-in)",
            CardKind::OathTotp => "TOTP on a YubiKey (codes from Yubico Authenticator)",
            CardKind::OathHotp => "HOTP on a YubiKey",
        }
    }

    /// The admin policy's action for it.
    fn action(self) -> &'static str {
        match self {
            CardKind::Piv => "enrollCERTIFICATE",
            CardKind::OathTotp => "enrollTOTP",
            CardKind::OathHotp => "enrollHOTP",
        }
    }

    fn parse(s: &str) -> Option<CardKind> {
        CardKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// The kinds `allowed` lets the session's user enrol for a user of `realm`.
pub(super) fn kinds(u: &ConsoleUser, realm: &str, allowed: impl Fn(&str) -> bool) -> Vec<CardKind> {
    if !u.may(Power::ChangeTokens, Some(realm)) {
        return Vec::new();
    }
    CardKind::ALL.into_iter().filter(|k| allowed(k.action())).collect()
}

fn user_page(realm: &str, login: &str) -> String {
    format!("/console/users/{}/{}", enc(realm), enc(login))
}

fn forbidden(back: &str) -> Response {
    let msg = "Your role or the admin policies do not allow enrolling a card for this user.";
    layout::error_page(StatusCode::FORBIDDEN, msg, Some(back)).into_response()
}

/// `GET /console/users/{realm}/{login}/card`.
pub(super) async fn page(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((realm, login)): Path<(String, String)>,
) -> Response {
    let back = user_page(&realm, &login);
    let who = match super::users::changing_user(&st, &s, &realm, &login, &back).await {
        Ok(who) => who,
        Err(page) => return page,
    };
    let allowed = kinds(&s.user, &realm, |a| policy_allows(&st, &s, a, who.target()));
    if allowed.is_empty() {
        return forbidden(&back);
    }
    let readers = match st.enrolment.devices_report().await {
        Ok((readers, _)) => readers.map_err(|e| e.to_string()),
        Err(e) => Err(e.message),
    };
    let title = format!("Enrol a card for {login} in {realm}");
    layout::page(&title, &s, Nav::Users, form_view(&s, &back, &allowed, &readers)).into_response()
}

fn form_view(
    s: &ConsoleSession,
    back: &str,
    allowed: &[CardKind],
    readers: &Result<Vec<ReaderInfo>, String>,
) -> Markup {
    html! {
        section.card {
            h2 { "Readers" }
            @match readers {
                Err(e) => p.error role="alert" { "The readers could not be asked: " (e) },
                Ok(list) if list.is_empty() => p { "No reader is attached to the appliance." },
                Ok(list) => div.table-wrap { table {
                    thead { tr { th { "Reader" } th { "Card" } th { "Serial" } th { "Firmware" } } }
                    tbody { @for r in list {
                        tr {
                            td { (r.reader) }
                            td { @if r.card_present { (r.kind) } @else { span.muted { "empty" } } @if let Some(n) = &r.note { " (" (n) ")" } }
                            td { (r.serial.clone().unwrap_or_default()) }
                            td { (r.firmware.clone().unwrap_or_default()) }
                        }
                    } }
                } },
            }
            p.muted { "Insert the card, then reload this page to see it." }
        }
        section.card {
            h2 { "Enrol" }
            form.stack method="post" action={ (back) "/card" } {
                (layout::csrf(s))
                label for="kind" { "What to put on the card" }
                select #kind name="kind" { @for k in allowed { option value=(k.name()) { (k.label()) } } }
                label for="reader" { "Reader" }
                select #reader name="reader" {
                    option value="" { "The only card present" }
                    @if let Ok(list) = readers { @for r in list.iter().filter(|r| r.card_present) { option value=(r.reader) { (r.reader) } } }
                }
                label for="description" { "Description" }
                input #description name="description" maxlength="80";
                label for="pin" { "PIV: the card's new PIN (empty: the appliance picks one and shows it once). OATH: the token's PIN at the appliance" }
                input #pin name="pin" type="password" autocomplete="new-password";
                details {
                    summary { "The card is not factory-fresh" }
                    label for="current_pin" { "PIV: the card's PIN now" }
                    input #current_pin name="current_pin" type="password" autocomplete="off";
                    label for="current_puk" { "PIV: the card's PUK now" }
                    input #current_puk name="current_puk" type="password" autocomplete="off";
                    label for="management_key" { "PIV: the card's management key now (hex)" }
                    input #management_key name="management_key" type="password" autocomplete="off";
                    label for="oath_password" { "OATH: the applet's password" }
                    input #oath_password name="oath_password" type="password" autocomplete="off";
                }
                button type="submit" { "Enrol the card" }
            }
        }
    }
}

fn secret(f: &FormFields, name: &str) -> Option<SecretString> {
    Some(f.raw(name)).filter(|v| !v.is_empty()).map(|v| SecretString::from(v.to_owned()))
}

/// What the engine is asked to do, from the form.
enum Job {
    Piv(Box<PivEnrolRequest>),
    Oath(Box<OathEnrolRequest>),
}

fn job(kind: CardKind, realm: &str, login: &str, f: &FormFields) -> Job {
    let reader = Some(f.get("reader").to_owned()).filter(|r| !r.is_empty());
    let description = f.get("description").to_owned();
    match kind {
        CardKind::Piv => Job::Piv(Box::new(PivEnrolRequest {
            user: login.to_owned(),
            realm: Some(realm.to_owned()),
            reader,
            serial: None,
            slot: None,
            algorithm: None,
            pin: secret(f, "pin"),
            current_pin: secret(f, "current_pin"),
            current_puk: secret(f, "current_puk"),
            management_key: secret(f, "management_key"),
            description,
        })),
        CardKind::OathTotp | CardKind::OathHotp => Job::Oath(Box::new(OathEnrolRequest {
            user: login.to_owned(),
            realm: Some(realm.to_owned()),
            token_type: if kind == CardKind::OathTotp { "totp" } else { "hotp" }.to_owned(),
            reader,
            serial: None,
            digits: None,
            hash: None,
            step: None,
            oath_password: secret(f, "oath_password"),
            pin: secret(f, "pin"),
            description,
        })),
    }
}

/// Where the progress and the outcome go into the page (a comment no value can produce: every
/// value in the page is escaped by maud).
const GAP: &str = "<!--countersign-card-progress-->";

/// `POST /console/users/{realm}/{login}/card`: the enrolment, its progress streamed.
pub(super) async fn enrol(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((realm, login)): Path<(String, String)>,
    f: FormFields,
) -> Response {
    let back = user_page(&realm, &login);
    let Some(kind) = CardKind::parse(f.get("kind")) else {
        return layout::error_page(StatusCode::BAD_REQUEST, "No such kind of card enrolment.", Some(&back))
            .into_response();
    };
    let who = match super::users::changing_user(&st, &s, &realm, &login, &back).await {
        Ok(who) => who,
        Err(page) => return page,
    };
    if !kinds(&s.user, &realm, |a| policy_allows(&st, &s, a, who.target())).contains(&kind) {
        return forbidden(&back);
    }
    let work = job(kind, &realm, &login, &f);
    let shell = layout::page(
        &format!("Enrolling a card for {login}"),
        &s,
        Nav::Users,
        html! { p role="status" { "Working with the card; keep it in the reader." } (PreEscaped(GAP)) },
    )
    .into_string();
    let (head, tail) = match shell.split_once(GAP) {
        Some((h, t)) => (h.to_owned(), t.to_owned()),
        None => (shell, String::new()),
    };
    let (svc, caller) = (st.enrolment.clone(), s.caller.clone());
    crate::ndjson::stream_as("text/html; charset=utf-8", move |tx| {
        tx.send_text(head);
        tx.send_text("<ol class=\"progress\" aria-live=\"polite\">".into());
        let mut step = |p: Progress| {
            tx.send_text(html! { li { strong { (p.step) } ": " (p.detail) } }.into_string());
        };
        let outcome = match &work {
            Job::Piv(r) => svc.enrol_piv(&caller, r, &mut step),
            Job::Oath(r) => svc.enrol_oath(&caller, r, &mut step),
        };
        tx.send_text("</ol>".into());
        tx.send_text(outcome_view(&outcome, &back).into_string());
        tx.send_text(tail);
    })
}

/// The end of the enrolment's page: what was enrolled, with what is shown this once, or what
/// went wrong and what the card holds now.
pub(super) fn outcome_view(r: &Result<EnrolOutcome, EnrolError>, back: &str) -> Markup {
    html! {
        @match r {
            Ok(o) => {
                p.notice role="status" { "Token " code { (o.token.serial) } " is enrolled on card " (o.card_serial) " in " (o.reader) "." }
                @if let Some(pin) = &o.new_pin { p { "The card's new PIN, shown this once:" } pre.secret data-secret { (pin.expose_secret()) } }
                @if let Some(puk) = &o.new_puk { p { "The card's new PUK, shown this once:" } pre.secret { (puk.expose_secret()) } }
                @if let Some(a) = &o.oath_account { p { "The account on the card: " code { (a) } } }
                @if let Some(c) = &o.certificate_pem { details { summary { "The certificate" } pre { (c) } } }
            },
            Err(e) => {
                p.error role="alert" data-code=(e.code) { "The card was not enrolled: " (e.message) }
                p { "What the card holds now: " (e.card_state) }
            },
        }
        p { a.button href=(back) { "Back to the user" } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign::console_access::Role;

    #[test]
    fn a_failed_enrolment_says_what_the_card_holds_and_a_chosen_pin_is_shown() {
        let e = EnrolError { code: "card_missing", message: "no card".into(), card_state: "unchanged".into() };
        let page = outcome_view(&Err(e), "/console/users/default/alice").into_string();
        assert!(page.contains("data-code=\"card_missing\"") && page.contains("unchanged"), "{page}");
        assert!(!page.contains("data-secret"));
    }

    #[test]
    fn kinds_follow_the_role_in_the_realm_and_then_the_admin_policies() {
        let names = |k: Vec<CardKind>| k.into_iter().map(CardKind::name).collect::<Vec<_>>();
        let hd = ConsoleUser { name: "hd".into(), role: Role::Helpdesk, realms: vec!["staff".into()] };
        assert_eq!(names(kinds(&hd, "staff", |_| true)), ["piv", "oath-totp", "oath-hotp"]);
        assert!(kinds(&hd, "partners", |_| true).is_empty(), "another realm");
        assert_eq!(names(kinds(&hd, "staff", |a| a != "enrollCERTIFICATE")), ["oath-totp", "oath-hotp"]);
        let au = ConsoleUser { name: "au".into(), role: Role::Auditor, realms: Vec::new() };
        assert!(kinds(&au, "staff", |_| true).is_empty(), "an auditor enrols nothing");
        for k in CardKind::ALL {
            assert_eq!(CardKind::parse(k.name()), Some(k));
        }
    }
}
