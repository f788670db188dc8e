//! The system page of realms and resolvers: the realms with their resolvers in order, the
//! resolvers' definitions, and a test of one user ("does realm R know login L, and as whom?"),
//! which asks the realm's directory exactly as a check would (`Realms::resolve`) and shows
//! where the user was found, the resolver's stable id of them, their contact data and how many
//! tokens they own.
//!
//! The test is a GET form: it changes nothing, so admins and auditors may run it (the role's
//! `SeeSystem`), limited by the admin policies' `resolverread`; each test is audited as a read
//! of personal data. Must never: answer "not found" when the directory could not be asked, or
//! identify the user by the string typed (the token count is of the user as resolved).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use countersign::resolvers::ResolvedUser;
use countersign::store::AuthAuditRow;
use maud::{html, Markup};
use serde::Deserialize;

use super::session::Signed;
use super::system::{self, Access};
use crate::SharedState;

const HERE: &str = "/console/system/realms";

/// The query of the page: a user to test (both empty: no test asked).
#[derive(Debug, Default, Deserialize)]
pub(super) struct TestQuery {
    #[serde(default)]
    realm: String,
    #[serde(default)]
    login: String,
}

/// A user as the test found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FoundUser {
    /// The realm asked.
    pub realm: String,
    /// The login as the source spells it (not as typed).
    pub login: String,
    /// The resolver that found the user (`(internal)`: the realm's own internal users).
    pub resolver: String,
    /// The kind of that resolver.
    pub kind: &'static str,
    /// The resolver's stable id of the user, by which their tokens are theirs.
    pub stable_id: String,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub mobile: String,
    /// How many tokens the user owns, or why they could not be counted.
    pub tokens: Result<usize, String>,
}

/// What a test of one user shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UserTest {
    /// No test was asked.
    NotAsked,
    /// The realm typed is not one of the appliance's.
    NoSuchRealm(String),
    /// The realm's resolvers, asked in order, found the user.
    Found(FoundUser),
    /// Every resolver of the realm answered, and none knows the login.
    NotFound { realm: String, login: String },
    /// A resolver could not be asked: the user may well exist (never shown as "not found").
    Failed { realm: String, error: String },
}

impl UserTest {
    /// The test's view from the directory's answer (`resolved`) and, for a user found, the
    /// count of their tokens (`tokens`, asked only then).
    pub(super) fn of(
        realm: &str,
        typed: &str,
        resolved: Result<Option<ResolvedUser>, String>,
        tokens: Option<Result<usize, String>>,
    ) -> UserTest {
        match resolved {
            Err(error) => UserTest::Failed { realm: realm.to_owned(), error },
            Ok(None) => UserTest::NotFound { realm: realm.to_owned(), login: typed.to_owned() },
            Ok(Some(r)) => {
                let u = r.user;
                let name = [u.given_name.as_deref(), u.surname.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                UserTest::Found(FoundUser {
                    realm: r.realm,
                    login: u.login,
                    resolver: u.resolver,
                    kind: r.kind.as_str(),
                    stable_id: u.uid,
                    name,
                    email: u.email.unwrap_or_default(),
                    phone: u.phone.unwrap_or_default(),
                    mobile: u.mobile.unwrap_or_default(),
                    tokens: tokens.unwrap_or_else(|| Err("not counted".into())),
                })
            }
        }
    }

    /// The audit row's result and detail of this test (no contact data: the audit names who
    /// looked, whom and what the directory said).
    fn audited(&self) -> (&'static str, String) {
        match self {
            UserTest::NotAsked => ("ok", String::new()),
            UserTest::NoSuchRealm(r) => ("refused", format!("no realm {r}")),
            UserTest::Found(f) => ("ok", format!("found by resolver {} as {}", f.resolver, f.stable_id)),
            UserTest::NotFound { .. } => ("ok", "not found".into()),
            UserTest::Failed { error, .. } => ("error", error.clone()),
        }
    }
}

/// `GET /console/system/realms[?realm=R&login=L]`.
pub(super) async fn page(State(st): State<SharedState>, Signed(s): Signed, Query(q): Query<TestQuery>) -> Response {
    // Realms are readable by whoever sees the system pages (as in privacyIDEA); resolvers and
    // their users need `resolverread`. No privacyIDEA action changes anything here yet.
    let access = Access::judge(&s.user, || system::policy(&st, &s, "resolverread"), || false);
    let asked = !q.login.trim().is_empty();
    if asked && !access.read {
        return system::forbidden(
            "Your role or the admin policies (resolverread) do not allow reading users of resolvers.",
            HERE,
        );
    }
    let names = st.realms.names();
    let test = if !asked {
        UserTest::NotAsked
    } else {
        let (realm, login) = (q.realm.trim().to_owned(), q.login.trim().to_owned());
        let test = test_user(&st, &names, realm.clone(), login.clone()).await;
        let (result, detail) = test.audited();
        let mut row = AuthAuditRow::new(&s.caller, "console/user-test", result);
        row.login = Some(login);
        row.realm = Some(realm);
        row.detail = Some(detail);
        if let Err(e) = st.audit.record(row).await {
            // As admin.sock's reads: the read is answered, the lost row is logged.
            tracing::error!(error = %e, "cannot audit a console user test");
        }
        test
    };
    let status = match &test {
        UserTest::NoSuchRealm(_) => StatusCode::NOT_FOUND,
        UserTest::Failed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let read = st.realms.run(|r| Ok((r.list_realms(), r.list_resolvers()))).await;
    let body = match read {
        Err(e) => system::unavailable(&e),
        Ok((realm_list, resolvers)) => html! {
            h2 { "Realms" }
            @match realm_list {
                Err(e) => (system::unavailable(&e)),
                Ok(list) => div.table-wrap { table {
                    thead { tr { th { "Realm" } th { "Default" } th { "Resolvers, in order" } } }
                    tbody { @for r in &list { tr { td { (r.name) } td { @if r.default { "yes" } } td { (r.resolvers.join(", ")) } } } }
                } },
            }
            h2 { "Resolvers" }
            @if !access.read {
                p.muted { "The admin policies (resolverread) do not let you read resolvers." }
            } @else {
                @match resolvers {
                    Err(e) => (system::unavailable(&e)),
                    Ok(list) => div.table-wrap { table {
                        thead { tr { th { "Resolver" } th { "Details" } } }
                        tbody { @for r in &list { tr { td { (r.name) } td { code { (serde_json::to_string(r).unwrap_or_default()) } } } } }
                    } },
                }
                (render_test(&names, &q, &test))
            }
        },
    };
    system::system_page_with(status, &s, "Realms and resolvers", HERE, body)
}

/// Asks realm `realm`'s resolvers for `login`, and counts the tokens of the user found.
async fn test_user(st: &SharedState, names: &[String], realm: String, login: String) -> UserTest {
    if !names.contains(&realm) {
        return UserTest::NoSuchRealm(realm);
    }
    let (r2, l2) = (realm.clone(), login.clone());
    let resolved = st.realms.run(move |r| r.resolve(Some(&r2), &l2)).await.map_err(|e| e.to_string());
    let tokens = match &resolved {
        // Listed by the login as the source spells it, which the token service resolves again
        // to the same owner (resolver + stable id): never by the string typed.
        Ok(Some(u)) => Some(
            st.tokens
                .list(Some(u.user.login.clone()), Some(realm.clone()), None)
                .await
                .map(|t| t.len())
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    UserTest::of(&realm, &login, resolved, tokens)
}

fn render_test(names: &[String], q: &TestQuery, test: &UserTest) -> Markup {
    html! {
        section.card {
            h2 { "Test a user" }
            p.muted { "Asks the realm's resolvers in order, as a check does. Nothing is changed; the test is audited." }
            form.search method="get" action=(HERE) {
                label { "Realm" select name="realm" {
                    @for r in names { option value=(r) selected[*r == q.realm] { (r) } }
                } }
                label { "Login" input name="login" value=(q.login) required; }
                button type="submit" { "Test this user" }
            }
            @match test {
                UserTest::NotAsked => {},
                UserTest::NoSuchRealm(r) => p.error role="alert" { "There is no realm " (r) "." },
                UserTest::NotFound { realm, login } => p.notice role="status" { "No resolver of realm " (realm) " knows " code { (login) } "." },
                UserTest::Failed { realm, error } => p.error role="alert" {
                    "The directory of realm " (realm) " could not be asked, so whether this user exists is unknown: " (error)
                },
                UserTest::Found(f) => div.table-wrap { table.found { tbody {
                    tr { th { "Found" } td { "yes, in realm " (f.realm) } }
                    tr { th { "Resolver" } td { (f.resolver) " (" (f.kind) ")" } }
                    tr { th { "Stable id" } td { code { (f.stable_id) } } }
                    tr { th { "Login (as the source spells it)" } td { (f.login) } }
                    tr { th { "Name" } td { (f.name) } }
                    tr { th { "E-mail" } td { (f.email) } }
                    tr { th { "Phone" } td { (f.phone) } }
                    @if !f.mobile.is_empty() { tr { th { "Mobile" } td { (f.mobile) } } }
                    tr { th { "Tokens" } td { @match &f.tokens {
                        Ok(n) => (n),
                        Err(e) => span.error { "could not be counted: " (e) },
                    } } }
                } } },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign::resolvers::{ResolverKind, UserInfo};

    fn ldap_user() -> ResolvedUser {
        ResolvedUser {
            user: UserInfo {
                login: "Alice".into(),
                uid: "5f2c-uuid".into(),
                email: Some("alice@example.org".into()),
                phone: Some("+41 79 123 45 67".into()),
                mobile: None,
                given_name: Some("Alice".into()),
                surname: Some("Liddell".into()),
                description: None,
                resolver: "corp-ldap".into(),
            },
            kind: ResolverKind::Ldap,
            realm: "staff".into(),
        }
    }

    #[test]
    fn a_found_user_is_shown_by_resolver_and_stable_id_as_the_source_spells_them() {
        let t = UserTest::of("staff", "ALICE", Ok(Some(ldap_user())), Some(Ok(2)));
        let UserTest::Found(f) = &t else { panic!("{t:?}") };
        assert_eq!((f.resolver.as_str(), f.kind, f.stable_id.as_str()), ("corp-ldap", "ldap", "5f2c-uuid"));
        assert_eq!(f.login, "Alice", "the source's spelling, not the typed ALICE");
        assert_eq!((f.name.as_str(), f.tokens.clone()), ("Alice Liddell", Ok(2)));
        assert_eq!(t.audited(), ("ok", "found by resolver corp-ldap as 5f2c-uuid".into()));
        let html = render_test(&["staff".into()], &TestQuery::default(), &t).into_string();
        assert!(html.contains("5f2c-uuid") && html.contains("alice@example.org"), "{html}");
    }

    #[test]
    fn a_directory_that_cannot_be_asked_is_an_error_never_not_found() {
        let t = UserTest::of("staff", "alice", Err("resolver corp-ldap: cannot reach ldap://x".into()), None);
        assert!(matches!(t, UserTest::Failed { .. }), "{t:?}");
        assert_eq!(t.audited().0, "error");
        let html = render_test(&[], &TestQuery::default(), &t).into_string();
        assert!(html.contains("could not be asked") && !html.contains("knows"), "{html}");
        let t = UserTest::of("staff", "nobody", Ok(None), None);
        assert_eq!(t, UserTest::NotFound { realm: "staff".into(), login: "nobody".into() });
    }

    #[test]
    fn tokens_not_counted_say_so_and_values_are_escaped() {
        let mut u = ldap_user();
        u.user.given_name = Some("<script>x</script>".into());
        let t = UserTest::of("staff", "alice", Ok(Some(u)), Some(Err("store: busy".into())));
        let html = render_test(&[], &TestQuery::default(), &t).into_string();
        assert!(html.contains("could not be counted: store: busy"), "{html}");
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"), "{html}");
    }
}
