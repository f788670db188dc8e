//! The console's page shell (header, navigation by role, main area, messages), its shared
//! pieces (forms with their CSRF token, pagination, tables) and its two static files. Every
//! value goes into HTML through maud, which escapes it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use countersign::console_access::{ConsoleSession, Power};
use maud::{html, Markup, DOCTYPE};

/// The parts of the console the navigation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Dashboard,
    Users,
    Audit,
    System,
    None,
}

/// The navigation a user sees: only what their role may open.
pub(super) fn nav_items(s: &ConsoleSession) -> Vec<(Nav, &'static str, &'static str)> {
    let u = &s.user;
    let mut items = vec![(Nav::Dashboard, "Dashboard", "/console/")];
    if u.may(Power::SeeUsers, None) || u.realm_limit().is_some_and(|r| !r.is_empty()) {
        items.push((Nav::Users, "Users", "/console/users"));
    }
    if u.may(Power::SeeAudit, None) {
        items.push((Nav::Audit, "Audit", "/console/audit"));
    }
    if u.may(Power::SeeSystem, None) {
        items.push((Nav::System, "System", "/console/system/policies"));
    }
    items
}

/// Every page's `<head>`: our stylesheet and script, nothing inline.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Countersign" }
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

/// A full page for a signed-in user.
pub(super) fn page(title: &str, s: &ConsoleSession, active: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "Countersign" }
                    nav aria-label="Main" {
                        ul {
                            @for (n, label, href) in nav_items(s) {
                                li { a href=(href) aria-current=[(n == active).then_some("page")] { (label) } }
                            }
                        }
                    }
                    div.who {
                        span { a href="/console/account" title="Your account and passkeys" { (s.user.name) } " · " (s.user.role.as_str()) }
                        form method="post" action="/console/sign-out" {
                            (csrf(s))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without a session (sign-in, errors).
pub(super) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    p.brand { "Countersign" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error answer as a page.
pub(super) fn error_page(status: StatusCode, message: &str, back: Option<&str>) -> (StatusCode, Markup) {
    let title = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
        _ => "Something went wrong",
    };
    (
        status,
        bare(
            title,
            html! {
                p.error role="alert" { (message) }
                p { a href=(back.unwrap_or("/console/")) { "Back" } }
            },
        ),
    )
}

/// `name` as one path segment of a form's action.
pub(super) fn segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The hidden CSRF field every form of a signed-in page carries.
pub(super) fn csrf(s: &ConsoleSession) -> Markup {
    html! { input type="hidden" name="_csrf" value=(s.csrf); }
}

/// A message at the top of a page (after a redirect: `?done=` names what was done).
pub(super) fn notice(done: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(d) = done { p.notice role="status" { (d) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
    }
}

/// Rows `page` of `rows` at `per_page` a page, and whether more follow.
pub(super) fn paginate<T: Clone>(rows: &[T], page: usize, per_page: usize) -> (Vec<T>, bool) {
    let start = page.saturating_mul(per_page);
    let end = start.saturating_add(per_page).min(rows.len());
    (rows.get(start..end).map(<[T]>::to_vec).unwrap_or_default(), end < rows.len())
}

/// Previous/next links of a paginated table; `base` is the page's URL with its query, to which
/// `page=N` is added.
pub(super) fn pager(base: &str, page: usize, more: bool) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="Pages" {
            @if page > 0 { a rel="prev" href={ (base) (sep) "page=" (page - 1) } { "← Previous" } }
            span { "Page " (page + 1) }
            @if more { a rel="next" href={ (base) (sep) "page=" (page + 1) } { "Next →" } }
        }
    }
}

/// Milliseconds since the epoch as UTC text.
pub(super) fn when_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// `GET /console/static/console.css`.
pub(super) async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", include_str!("static/console.css"))
}

/// `GET /console/static/console.js`: the passkey ceremony and nothing else.
pub(super) async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", include_str!("static/console.js"))
}

fn static_file(kind: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_split_rows_and_say_whether_more_follow() {
        let rows: Vec<u32> = (0..25).collect();
        assert_eq!(paginate(&rows, 0, 10), ((0..10).collect(), true));
        assert_eq!(paginate(&rows, 2, 10), ((20..25).collect(), false));
        assert_eq!(paginate(&rows, 9, 10), (vec![], false));
    }

    #[test]
    fn the_static_script_is_our_own_and_small() {
        let js = include_str!("static/console.js");
        assert!(js.len() < 16 * 1024);
        assert!(!js.contains("eval(") && !js.contains("innerHTML"));
    }
}
