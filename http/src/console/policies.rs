//! The policies page: the list, a form to define or change a policy (validated by the engine's
//! catalogue, the errors shown beside the admin's own input), enable, disable, delete, and the
//! `policy check` explanation of which policies apply to a request the admin describes.
//!
//! Reading needs the system pages (admins, auditors) and the `policyread` admin policy;
//! changing needs the admin role and `policywrite` (`policydelete` to delete, after fresh proof
//! of both factors). Every change goes through `PolicyService`, which stores it with its audit
//! row (the console user as caller) in one transaction. Must never: judge a policy's content
//! itself (the engine's catalogue does) or keep a half-validated policy.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use countersign::console_access::{ConsoleSession, Power};
use countersign::policy::service::CheckTime;
use countersign::policy::{CheckRequest, Explanation, PolicyDefinition, PolicyError, Scope, CATALOGUE};
use countersign::store::PolicyRecord;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::segment as enc;
use super::layout::{self, Nav};
use super::session::{FormFields, Signed};
use super::system::{self, system_page};
use crate::SharedState;

const HERE: &str = "/console/system/policies";

/// What the admin policies call reading, changing and deleting policies.
const READ: &str = "policyread";
const WRITE: &str = "policywrite";
const DELETE: &str = "policydelete";

/// The role first, then the admin policy's `action` (never asked for a role that may not).
fn may(st: &SharedState, s: &ConsoleSession, power: Power, action: &str) -> bool {
    s.user.may(power, None) && system::policy(st, s, action)
}

fn forbidden() -> Response {
    system::forbidden("Your role or the admin policies do not allow this.", HERE)
}

/// A policy as the form shows and sends it: every field text, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PolicyForm {
    pub name: String,
    pub scope: String,
    pub active: bool,
    pub priority: String,
    /// One action a line: `name=value`, or `name` alone for a flag that is set.
    pub actions: String,
    pub realms: String,
    pub resolvers: String,
    pub users: String,
    pub clients: String,
    pub time: String,
    pub admin_realms: String,
    pub admin_users: String,
    pub description: String,
}

/// A list field as the form shows it.
fn joined(list: &[String]) -> String {
    list.join(", ")
}

/// A list field as typed: separated by commas or white space, empty items dropped.
fn split(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl PolicyForm {
    /// A new policy's form: active, priority 1, the scope chosen.
    fn blank(scope: &str) -> PolicyForm {
        PolicyForm { scope: scope.to_owned(), active: true, priority: "1".into(), ..Default::default() }
    }

    /// The form of a stored policy.
    pub(super) fn of(p: &PolicyRecord) -> PolicyForm {
        let actions = p
            .actions
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::Bool(true) => k.clone(),
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join("\n");
        PolicyForm {
            name: p.name.clone(),
            scope: p.scope.clone(),
            active: p.active,
            priority: p.priority.to_string(),
            actions,
            realms: joined(&p.realms),
            resolvers: joined(&p.resolvers),
            users: joined(&p.users),
            clients: joined(&p.clients),
            time: p.time.clone(),
            admin_realms: joined(&p.admin_realms),
            admin_users: joined(&p.admin_users),
            description: p.description.clone(),
        }
    }

    /// The form as posted.
    fn posted(f: &FormFields) -> PolicyForm {
        PolicyForm {
            name: f.get("name").to_owned(),
            scope: f.get("scope").to_owned(),
            active: f.get("active") == "on",
            priority: f.get("priority").to_owned(),
            actions: f.get("actions").to_owned(),
            realms: f.get("realms").to_owned(),
            resolvers: f.get("resolvers").to_owned(),
            users: f.get("users").to_owned(),
            clients: f.get("clients").to_owned(),
            time: f.get("time").to_owned(),
            admin_realms: f.get("admin_realms").to_owned(),
            admin_users: f.get("admin_users").to_owned(),
            description: f.get("description").to_owned(),
        }
    }

    /// The definition the engine checks, or what in the form's own syntax is wrong (the
    /// engine then judges names, actions, values and conditions).
    pub(super) fn definition(&self) -> Result<PolicyDefinition, String> {
        let priority = self
            .priority
            .parse::<u32>()
            .map_err(|_| format!("priority must be a whole number of at least 1, not '{}'", self.priority))?;
        let mut actions = serde_json::Map::new();
        for (n, line) in self.actions.lines().map(str::trim).enumerate().filter(|(_, l)| !l.is_empty()) {
            let (name, value) = match line.split_once('=') {
                Some((k, v)) => (k.trim(), serde_json::Value::String(v.trim().to_owned())),
                None => (line, serde_json::Value::Bool(true)),
            };
            if name.is_empty() {
                return Err(format!("action line {} has no action name before '='", n + 1));
            }
            if actions.insert(name.to_owned(), value).is_some() {
                return Err(format!("action {name} is given twice"));
            }
        }
        Ok(PolicyDefinition {
            name: Some(self.name.clone()),
            scope: self.scope.clone(),
            active: self.active,
            priority,
            actions,
            realms: split(&self.realms),
            resolvers: split(&self.resolvers),
            users: split(&self.users),
            clients: split(&self.clients),
            time: self.time.clone(),
            admin_realms: split(&self.admin_realms),
            admin_users: split(&self.admin_users),
            description: self.description.clone(),
        })
    }
}

/// The query of the list page: what was just done, and a check the admin asked for.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    done: String,
    #[serde(flatten)]
    check: CheckForm,
}

/// The `policy check` form, as typed (a GET form: it changes nothing).
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
pub(super) struct CheckForm {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub realm: String,
    #[serde(default)]
    pub resolver: String,
    #[serde(default)]
    pub client: String,
    #[serde(default)]
    pub time: String,
    #[serde(default)]
    pub admin: String,
}

fn given(s: &str) -> Option<String> {
    Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl CheckForm {
    /// The engine's request; `None` when no action was asked about.
    pub(super) fn request(&self) -> Option<CheckRequest> {
        let action = given(&self.action)?;
        Some(CheckRequest {
            scope: given(&self.scope),
            action,
            user: given(&self.user),
            realm: given(&self.realm),
            resolver: given(&self.resolver),
            client: given(&self.client),
            time: given(&self.time).map(CheckTime::Text),
            admin: given(&self.admin),
            admin_realm: None,
        })
    }
}

fn done_text(done: &str) -> Option<&'static str> {
    match done {
        "saved" => Some("The policy is saved and in effect."),
        "enabled" => Some("The policy is enabled."),
        "disabled" => Some("The policy is disabled."),
        "deleted" => Some("The policy is deleted."),
        _ => None,
    }
}

/// `GET /console/system/policies`.
pub(super) async fn list(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<ListQuery>) -> Response {
    if !may(&st, &s, Power::SeeSystem, READ) {
        return forbidden();
    }
    let writable = may(&st, &s, Power::ChangeSystem, WRITE);
    let deletable = may(&st, &s, Power::ChangeSystem, DELETE);
    let checked = q.check.request().map(|r| st.policies.check(&r).map_err(|e| e.to_string()));
    let body = match st.policies.list().await {
        Err(e) => html! { p.error role="alert" { "The policies could not be read: " (e) } },
        Ok(list) => html! {
            (layout::notice(done_text(&q.done), None))
            @if writable { p { a.button href="/console/system/policies/edit" { "New policy" } } }
            @if list.is_empty() { p { "No policy is defined: every admin may do everything, and the defaults apply." } }
            @else { div.table-wrap { table {
                thead { tr { th { "Name" } th { "Scope" } th { "Active" } th { "Priority" } th { "Actions" } th { "Applies to" } th { "Change" } } }
                tbody { @for p in &list {
                    tr {
                        td { (p.name) } td { (p.scope) } td { @if p.active { "yes" } @else { "no" } } td { (p.priority) }
                        td { code { (PolicyForm::of(p).actions.replace('\n', "; ")) } }
                        td { (applies_to(p)) }
                        td {
                            @if writable {
                                a.button.secondary href={ "/console/system/policies/edit?name=" (enc(&p.name)) } { "Edit" }
                                (switch_form(&s, p))
                            }
                            @if deletable {
                                form.inline method="post" action={ "/console/system/policies/" (enc(&p.name)) "/delete" } {
                                    (layout::csrf(&s))
                                    button.danger type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                } }
            } } }
            (check_section(&q.check, checked.as_ref()))
        },
    };
    system_page(&s, "Policies", HERE, body)
}

fn applies_to(p: &PolicyRecord) -> Markup {
    let parts = [
        ("realms", &p.realms),
        ("resolvers", &p.resolvers),
        ("users", &p.users),
        ("clients", &p.clients),
        ("admin realms", &p.admin_realms),
        ("admins", &p.admin_users),
    ];
    html! {
        @for (label, l) in parts { @if !l.is_empty() { (label) " " (l.join(", ")) "; " } }
        @if !p.time.is_empty() { "time " (p.time) }
        @if parts.iter().all(|(_, l)| l.is_empty()) && p.time.is_empty() { span.muted { "everyone, always" } }
    }
}

fn switch_form(s: &ConsoleSession, p: &PolicyRecord) -> Markup {
    let to = if p.active { "disable" } else { "enable" };
    html! {
        form.inline method="post" action={ "/console/system/policies/" (enc(&p.name)) "/" (to) } {
            (layout::csrf(s))
            button.secondary type="submit" { @if p.active { "Disable" } @else { "Enable" } }
        }
    }
}

/// The check form and, when asked, its explanation: the effective value, which policy gave
/// it, and for every policy of the scope each condition with why it matched or not.
fn check_section(q: &CheckForm, checked: Option<&Result<Explanation, String>>) -> Markup {
    html! {
        section.card #check {
            h2 { "Which policies apply?" }
            p.muted { "Describe a request; the appliance says what each policy of the action's scope makes of it." }
            form.grid method="get" action="/console/system/policies#check" {
                label { "Action" input name="action" value=(q.action) list="catalogue" required; }
                label { "Scope (when the action is in several)" select name="scope" {
                    option value="" { "its own" }
                    @for sc in Scope::ALL { option value=(sc.as_str()) selected[q.scope == sc.as_str()] { (sc.as_str()) } }
                } }
                label { "User" input name="user" value=(q.user); }
                label { "Realm" input name="realm" value=(q.realm); }
                label { "Resolver" input name="resolver" value=(q.resolver); }
                label { "Client address" input name="client" value=(q.client); }
                label { "Time (Unix seconds or 'Sat 10:00'; empty: now)" input name="time" value=(q.time); }
                label { "Administrator (admin scope)" input name="admin" value=(q.admin); }
                button type="submit" { "Explain" }
            }
            (catalogue_list())
            @match checked {
                None => {},
                Some(Err(e)) => p.error role="alert" { (e) },
                Some(Ok(x)) => (explanation(x)),
            }
        }
    }
}

fn catalogue_list() -> Markup {
    html! { datalist #catalogue { @for a in CATALOGUE { option value=(a.name) { (a.scope.as_str()) ": " (a.meaning) } } } }
}

/// The explanation's view.
fn explanation(x: &Explanation) -> Markup {
    html! {
        p.notice role="status" {
            (x.scope.as_str()) " / " code { (x.action) } " at " (x.time) ": "
            @match (&x.value, &x.conflict) {
                (_, Some(c)) => strong { "conflict, the request would be refused: " (c) },
                (Some(v), None) => { strong { (v.to_string()) } " from " (x.from.join(", ")) },
                (None, None) => strong { "no policy sets it; the default applies" },
            }
        }
        @if !x.policies.is_empty() { div.table-wrap { table {
            thead { tr { th { "Policy" } th { "Priority" } th { "Matched" } th { "Sets" } th { "Conditions" } } }
            tbody { @for p in &x.policies {
                tr.effective[p.effective] {
                    td { (p.name) @if p.effective { " (effective)" } }
                    td { (p.priority) }
                    td { @if !p.active { "inactive" } @else if p.matched { "yes" } @else { "no" } }
                    td { @if let Some(v) = &p.sets { code { (v.to_string()) } } }
                    td { ul.plain { @for c in &p.conditions {
                        li { @if c.matched { "✓ " } @else { "✗ " } (c.condition) ": " (c.reason) }
                    } } }
                }
            } }
        } } }
    }
}

/// The query of the edit page: the policy to change; none: a new one.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EditQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
}

/// `GET /console/system/policies/edit`.
pub(super) async fn edit(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<EditQuery>) -> Response {
    if !may(&st, &s, Power::ChangeSystem, WRITE) {
        return forbidden();
    }
    let form = if q.name.is_empty() {
        PolicyForm::blank(if q.scope.is_empty() { "authentication" } else { &q.scope })
    } else {
        match st.policies.show(q.name.clone()).await {
            Ok(p) => PolicyForm::of(&p),
            Err(PolicyError::Refused(e)) => {
                return layout::error_page(StatusCode::NOT_FOUND, &e.to_string(), Some(HERE)).into_response()
            }
            Err(e) => return unavailable(&e),
        }
    };
    edit_page(&s, &form, !q.name.is_empty(), None).into_response()
}

fn unavailable(e: &dyn std::fmt::Display) -> Response {
    layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &format!("The appliance could not do this: {e}"), Some(HERE))
        .into_response()
}

fn edit_page(s: &ConsoleSession, f: &PolicyForm, existing: bool, error: Option<&str>) -> Markup {
    let title = if existing { format!("Policy {}", f.name) } else { "New policy".to_owned() };
    let body = html! {
        (layout::notice(None, error))
        form.stack.wide method="post" action="/console/system/policies/save" {
            (layout::csrf(s))
            input type="hidden" name="existing" value=(if existing { "yes" } else { "" });
            label for="name" { "Name" }
            @if existing { input #name name="name" value=(f.name) readonly; }
            @else { input #name name="name" value=(f.name) required maxlength="64" pattern="[A-Za-z0-9_.\\-]+" autofocus; }
            label for="scope" { "Scope" }
            select #scope name="scope" {
                @for sc in Scope::ALL { option value=(sc.as_str()) selected[f.scope == sc.as_str()] { (sc.as_str()) } }
            }
            label.check { input type="checkbox" name="active" checked[f.active]; " Active" }
            label for="priority" { "Priority (lower wins)" }
            input #priority name="priority" value=(f.priority) inputmode="numeric" required;
            label for="actions" { "Actions, one a line: " code { "name=value" } ", or the name alone for a flag" }
            textarea #actions name="actions" rows="8" spellcheck="false" { (f.actions) }
            (catalogue_help(&f.scope))
            fieldset {
                legend { "Applies to (empty: everyone). Separate items with commas; " code { "!" } " excludes." }
                label for="realms" { "User realms" } input #realms name="realms" value=(f.realms);
                label for="resolvers" { "Resolvers" } input #resolvers name="resolvers" value=(f.resolvers);
                label for="users" { "Users" } input #users name="users" value=(f.users);
                label for="clients" { "Client addresses and networks" } input #clients name="clients" value=(f.clients);
                label for="time" { "Time, in the appliance's local time (" code { "Mon-Fri: 08:00-18:00" } ")" }
                input #time name="time" value=(f.time);
                label for="admin_realms" { "Admin scope: administrators' realms" } input #admin_realms name="admin_realms" value=(f.admin_realms);
                label for="admin_users" { "Admin scope: administrators (console users by name)" } input #admin_users name="admin_users" value=(f.admin_users);
            }
            label for="description" { "Description" }
            textarea #description name="description" rows="2" maxlength="1000" { (f.description) }
            div.buttons {
                button type="submit" { "Save" }
                a.button.secondary href=(HERE) { "Cancel" }
            }
        }
    };
    layout::page(&title, s, Nav::System, body)
}

/// The actions of a scope with what they take and do, folded away.
fn catalogue_help(scope: &str) -> Markup {
    html! {
        details.help {
            summary { "Actions of each scope" }
            @for sc in Scope::ALL {
                details open[sc.as_str() == scope] {
                    summary { (sc.as_str()) }
                    dl { @for a in CATALOGUE.iter().filter(|a| a.scope == sc) {
                        dt { code { (a.name) } " — " (a.kind.describe()) } dd { (a.meaning) }
                    } }
                }
            }
        }
    }
}

/// `POST /console/system/policies/save`: defines a new policy or replaces one; a refused
/// definition comes back in the form with the engine's reason.
pub(super) async fn save(State(st): State<SharedState>, Signed(s): Signed, f: FormFields) -> Response {
    if !may(&st, &s, Power::ChangeSystem, WRITE) {
        return forbidden();
    }
    let form = PolicyForm::posted(&f);
    let existing = f.get("existing") == "yes";
    let refused = |m: &str| (StatusCode::UNPROCESSABLE_ENTITY, edit_page(&s, &form, existing, Some(m))).into_response();
    let def = match form.definition() {
        Ok(d) => d,
        Err(m) => return refused(&m),
    };
    // A new policy never overwrites one of the same name; an edit replaces only that policy.
    match st.policies.put(s.caller.clone(), None, def, existing).await {
        Ok(_) => Redirect::to(&format!("{HERE}?done=saved")).into_response(),
        Err(PolicyError::Refused(e)) => refused(&e.to_string()),
        Err(e) => unavailable(&e),
    }
}

/// `POST /console/system/policies/{name}/{change}`: enable, disable or delete.
pub(super) async fn change(
    State(st): State<SharedState>,
    Signed(s): Signed,
    Path((name, change)): Path<(String, String)>,
) -> Response {
    let (power_action, done) = match change.as_str() {
        "enable" => (WRITE, "enabled"),
        "disable" => (WRITE, "disabled"),
        "delete" => (DELETE, "deleted"),
        _ => return layout::error_page(StatusCode::NOT_FOUND, "No such change.", Some(HERE)).into_response(),
    };
    if !may(&st, &s, Power::ChangeSystem, power_action) {
        return forbidden();
    }
    if power_action == DELETE {
        if let Some(to_reauth) = system::fresh_or_reauth(&s, HERE) {
            return to_reauth;
        }
    }
    let c = s.caller.clone();
    let outcome = match change.as_str() {
        "delete" => st.policies.delete(c, name).await,
        other => st.policies.set_active(c, name, other == "enable").await.map(|_| ()),
    };
    match outcome {
        Ok(()) => Redirect::to(&format!("{HERE}?done={done}")).into_response(),
        Err(PolicyError::Refused(e)) => {
            layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string(), Some(HERE)).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PolicyRecord {
        let mut actions = serde_json::Map::new();
        actions.insert("otppin".into(), "userstore".into());
        actions.insert("passthru".into(), true.into());
        actions.insert("challenge_text".into(), "Code, please".into());
        let mut r = PolicyRecord::new("staff-pin", "authentication", actions);
        r.realms = vec!["staff".into(), "!guests".into()];
        r.clients = vec!["10.0.0.0/8".into()];
        r.priority = 3;
        r
    }

    #[test]
    fn a_stored_policy_round_trips_through_its_form() {
        let r = record();
        let f = PolicyForm::of(&r);
        assert!(f.actions.lines().any(|l| l == "passthru"), "a set flag is its name alone: {}", f.actions);
        assert!(f.actions.lines().any(|l| l == "otppin=userstore"));
        assert_eq!(f.realms, "staff, !guests");
        let d = f.definition().unwrap();
        assert_eq!(d.priority, 3);
        assert_eq!(d.realms, r.realms);
        assert_eq!(d.clients, r.clients);
        assert_eq!(d.actions["passthru"], serde_json::Value::Bool(true));
        assert_eq!(d.actions["challenge_text"], "Code, please");
        // The engine accepts what the form made of a valid record.
        let back = countersign::policy::service::checked_record("staff-pin".into(), d).unwrap();
        assert_eq!(back.actions, r.actions);
    }

    #[test]
    fn the_forms_own_syntax_errors_say_where() {
        let mut f = PolicyForm::of(&record());
        f.priority = "first".into();
        assert!(f.definition().unwrap_err().contains("priority"));
        f.priority = "1".into();
        f.actions = "passthru\n=3".into();
        assert!(f.definition().unwrap_err().contains("line 2"));
        f.actions = "passthru\npassthru=false".into();
        assert!(f.definition().unwrap_err().contains("twice"));
    }

    #[test]
    fn a_check_asks_only_when_an_action_is_named_and_passes_empty_fields_as_none() {
        assert!(CheckForm::default().request().is_none());
        let q = CheckForm { action: " otppin ".into(), realm: "staff".into(), ..Default::default() };
        let r = q.request().unwrap();
        assert_eq!(r.action, "otppin");
        assert_eq!(r.realm.as_deref(), Some("staff"));
        assert!(r.user.is_none() && r.client.is_none() && r.time.is_none() && r.scope.is_none());
    }
}
