//! The architecture check (`make lint`, `cargo run -p countersign-tidy`): the crate graph is the
//! architecture, so the rules of ARCHITECTURE.md that a dependency can express are checked
//! here, on `cargo metadata` and on the sources, instead of by review.
//!
//! - [`crate_rules`]: which workspace crates may depend on which crates (cryptoki only in the
//!   HSM crate, libloading only in the plugin worker, no I/O crate in a plugin, ...).
//! - [`module_cycles`]: the groups of a crate's top-level modules that depend on each other in a
//!   circle, found from `crate::` paths in the sources.
//!
//! It reads; it never changes a file. Written by hand: no crate on the registries checks
//! dependency rules and module cycles of a Cargo workspace this way (cargo-deny checks
//! licences and versions, not who may use whom).

#![warn(missing_docs, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One workspace crate: its name, its normal (not dev or build) dependencies, and the file of
/// its library target, if it has one.
#[derive(Debug, Clone)]
pub struct Package {
    /// The crate's name.
    pub name: String,
    /// The names of its normal dependencies.
    pub deps: BTreeSet<String>,
    /// Its library's root file.
    pub lib: Option<PathBuf>,
}

/// The workspace's crates from `cargo metadata --format-version 1` output.
pub fn packages(metadata: &serde_json::Value) -> Result<Vec<Package>, String> {
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .ok_or("cargo metadata has no workspace_members")?
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let all = metadata["packages"].as_array().ok_or("cargo metadata has no packages")?;
    Ok(all
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .map(|p| Package {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            deps: p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str().map(str::to_owned))
                .collect(),
            lib: p["targets"].as_array().into_iter().flatten().find_map(|t| {
                let kinds = t["kind"].as_array()?;
                kinds
                    .iter()
                    .any(|k| matches!(k.as_str(), Some("lib" | "rlib")))
                    .then(|| PathBuf::from(t["src_path"].as_str().unwrap_or_default()))
            }),
        })
        .collect())
}

/// A dependency only some crates may have, and why.
#[derive(Debug, Clone, Copy)]
pub struct Confined {
    /// The confined crate.
    pub dependency: &'static str,
    /// The workspace crates that may depend on it.
    pub allowed: &'static [&'static str],
    /// The rule, for the message.
    pub why: &'static str,
}

/// Who may depend on what. A crate not named in `allowed` must not depend on `dependency`.
pub const CONFINED: &[Confined] = &[
    Confined {
        dependency: "cryptoki",
        allowed: &["countersign-hsm"],
        why: "only the HSM crate speaks PKCS#11; everything else asks it",
    },
    Confined {
        dependency: "cryptoki-sys",
        allowed: &["countersign-faulty-pkcs11"],
        why: "only the HSM crate (through cryptoki) and the test-only fault-injecting module touch PKCS#11",
    },
    Confined {
        dependency: "libloading",
        allowed: &["countersign-plugin-worker", "countersign-faulty-pkcs11"],
        why: "plugin code is loaded only inside the sandboxed worker (the fault-injecting PKCS#11 module of the \
              tests loads SoftHSM)",
    },
    Confined {
        dependency: "rusqlite",
        allowed: &["countersign-store", "countersign-tests"],
        why: "SQL lives in the store, whose API speaks domain types; the tests edit database files offline to \
              prove tampering is caught",
    },
    Confined {
        dependency: "postgres",
        allowed: &["countersign-store", "countersign-tests"],
        why: "SQL lives in the store, on either engine; the cluster tests prepare and inspect their own database",
    },
    Confined {
        dependency: "countersign-hsm",
        allowed: &["countersign", "countersignd", "countersign-tests"],
        why: "keys are used only by the services (`countersign`) and the daemon's wiring (`countersignd`); the \
              store keeps key ids and names them with the core's types, the front-ends ask the services",
    },
    Confined {
        dependency: "axum",
        allowed: &["countersign-http"],
        why: "HTTP routing lives in the front-ends; the services behind them speak domain types",
    },
    Confined {
        dependency: "hyper",
        allowed: &["countersign-http", "countersign-client", "countersign-tests"],
        why: "HTTP lives in the front-ends and the admin-socket client; the tests speak HTTP to the daemon",
    },
    Confined {
        dependency: "figment",
        allowed: &["countersignd"],
        why: "the configuration file is read at the daemon's edge, which resolves it into the settings the \
              services and front-ends take; they never see a file section",
    },
    Confined {
        dependency: "pcsc",
        allowed: &["countersign-card"],
        why: "card readers are reached only through the card crate",
    },
];

/// Crates that must stay free of I/O: the core (decision rules tested without a daemon), and
/// the plugins, which run sandboxed with no file system or network, with the ABI, template and
/// OTP crates they share, and the protocol crates (WebAuthn, PowerAuth): pure functions over bytes.
pub const PURE: &[&str] = &[
    "countersign-core",
    "countersign-api",
    "countersign-plugin-abi",
    "countersign-template",
    "countersign-yubico-otp",
    "countersign-oath",
    "countersign-simple-token",
    "countersign-token-hotp",
    "countersign-token-totp",
    "countersign-token-sms",
    "countersign-token-email",
    "countersign-token-spass",
    "countersign-token-pw",
    "countersign-token-registration",
    "countersign-token-tan",
    "countersign-token-paper",
    "countersign-token-indexedsecret",
    "countersign-token-yubikey",
    "countersign-token-webauthn",
    "countersign-gateway-http-sms",
    "countersign-gateway-smtp",
    "countersign-gateway-fcm",
    "countersign-webauthn",
    "countersign-powerauth",
];

/// Dependencies that do I/O (or load code), which a [`PURE`] crate must not have.
pub const IO_CRATES: &[&str] = &[
    "tokio",
    "rusqlite",
    "postgres",
    "cryptoki",
    "libloading",
    "axum",
    "hyper",
    "hyper-util",
    "reqwest",
    "ureq",
    "lettre",
    "ldap3",
    "pcsc",
    "libc",
    "rustls",
];

/// Workspace crates a crate must never depend on, and why: the admin CLI reaches the daemon
/// only through its socket, so it links none of the daemon's parts; the API's wire types link
/// none either, so the CLI can share them.
pub const SEPARATED: &[(&str, &[&str], &str)] = &[
    (
        "countersign-cli",
        &["countersign", "countersign-store", "countersign-hsm", "countersign-card"],
        "the admin CLI talks to the daemon's socket and must not link the services, the store, the HSM or the \
         card readers",
    ),
    (
        "countersign-api",
        &["countersign", "countersign-store", "countersign-hsm", "countersign-card", "countersign-http"],
        "the native API's wire types are data the server and the CLI share; the server turns its rows into them, \
         so they must not link the services, the store, the HSM, the card readers or the HTTP front-end",
    ),
];

/// Crates that depend on no other workspace crate: the core sits under everything, and the
/// PowerAuth cryptography is pure functions over bytes that must not reach for the store or the
/// HSM (the appliance hands it the keys it unsealed).
pub const FOUNDATIONS: &[&str] = &["countersign-core", "countersign-powerauth"];

/// Every broken dependency rule, as a sentence naming the crate, the dependency and the rule.
pub fn crate_rules(packages: &[Package]) -> Vec<String> {
    let mut broken = Vec::new();
    let workspace: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    for p in packages.iter().filter(|p| FOUNDATIONS.contains(&p.name.as_str())) {
        for d in p.deps.iter().filter(|d| workspace.contains(d.as_str())) {
            broken.push(format!("{} depends on {d}: a foundation crate depends on no other workspace crate", p.name));
        }
    }
    for p in packages {
        for rule in CONFINED {
            if p.deps.contains(rule.dependency) && !rule.allowed.contains(&p.name.as_str()) {
                broken.push(format!("{} depends on {}: {}", p.name, rule.dependency, rule.why));
            }
        }
        for (_, banned, why) in SEPARATED.iter().filter(|(name, _, _)| *name == p.name) {
            for d in banned.iter().filter(|d| p.deps.contains(**d)) {
                broken.push(format!("{} depends on {d}: {why}", p.name));
            }
        }
        if PURE.contains(&p.name.as_str()) {
            for io in IO_CRATES.iter().filter(|io| p.deps.contains(**io)) {
                broken.push(format!(
                    "{} depends on {io}: plugins and the crates they share run without I/O, in their sandbox",
                    p.name
                ));
            }
        }
    }
    broken
}

/// The top-level modules of the crate whose root file is `root`, and for each the other
/// top-level modules its files name through `crate::` paths or `super::` paths that climb to
/// the root (doc links included: a link is a dependency too; test modules are not read).
pub fn module_graph(root: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let text = std::fs::read_to_string(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let dir = root.parent().ok_or_else(|| format!("{} has no directory", root.display()))?;
    let modules = declared_modules(&text);
    let mut graph = BTreeMap::new();
    for m in &modules {
        let mut files = Vec::new();
        let file = dir.join(format!("{m}.rs"));
        if file.exists() {
            files.push(file);
        }
        let sub = dir.join(m);
        if sub.is_dir() {
            rust_files(&sub, &mut files)?;
        }
        let mut uses = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            // Test modules may reach anywhere in their crate; only the code they test is layered.
            let text = text.find("#[cfg(test)]").map_or(text.as_str(), |i| &text[..i]);
            let mut named = crate_paths(text);
            named.extend(root_paths_through_super(text, module_depth(dir, &f)));
            uses.extend(named.into_iter().filter(|u| u != m && modules.contains(u)));
        }
        graph.insert(m.clone(), uses);
    }
    Ok(graph)
}

/// How deep below the crate root the module of file `f` sits: `src/a.rs` and `src/a/mod.rs`
/// are 1, `src/a/b.rs` is 2.
fn module_depth(src: &Path, f: &Path) -> usize {
    let parts = f.strip_prefix(src).map_or(1, |rel| rel.components().count());
    if f.file_name().is_some_and(|n| n == "mod.rs") {
        parts.saturating_sub(1).max(1)
    } else {
        parts
    }
}

/// The first segments of paths that climb to the crate root with `super::` from a module
/// `depth` levels down (`super::store::X` in `src/a.rs`, `super::super::store` in `src/a/b.rs`):
/// a dependency as much as `crate::store::X`. Give it the text before any inline test module,
/// whose `super::` names its own file's items.
pub fn root_paths_through_super(text: &str, depth: usize) -> BTreeSet<String> {
    let prefix = "super::".repeat(depth.max(1));
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(&prefix) {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + prefix.len()..];
        rest = after;
        // `x_super::` is another name; `super::super::` seen from too shallow a prefix is a
        // longer climb, read when the loop reaches its last `super::`.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') || after.starts_with("super::") {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            found.extend(group[..end].split(',').filter_map(|i| first_ident(i.trim())));
        } else if let Some(name) = first_ident(after) {
            found.insert(name);
        }
    }
    found
}

/// The modules a crate root declares (`mod x;`, `pub mod x;`, `pub(crate) mod x;`).
fn declared_modules(root: &str) -> BTreeSet<String> {
    root.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub ").or_else(|| l.strip_prefix("pub(crate) ")).unwrap_or(l);
            let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
            name.chars().all(|c| c.is_alphanumeric() || c == '_').then(|| name.to_owned())
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The first segments of the `crate::` paths in `text`: `crate::store::X` and
/// `crate::{store::X, tokens}` both name `store` (and `tokens`).
pub fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        // `countersign_crate::` or `my_crate::` are other paths.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            found.extend(items.iter().filter_map(|i| first_ident(i.trim())));
        } else if let Some(name) = first_ident(rest) {
            found.insert(name);
        }
    }
    found
}

fn first_ident(s: &str) -> Option<String> {
    let name: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// The groups of modules that depend on each other in a circle (strongly connected components
/// of more than one module), largest first.
pub fn module_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    // Tarjan's algorithm; recursion depth is at most the number of modules (tens).
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        groups: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            let reach = if !s.index.contains_key(w) {
                visit(s, w);
                s.low.get(w).copied()
            } else if s.on_stack.contains(w) {
                s.index.get(w).copied()
            } else {
                None
            };
            if let (Some(r), Some(l)) = (reach, s.low.get_mut(v)) {
                *l = (*l).min(r);
            }
        }
        if s.low.get(v) == s.index.get(v) {
            let mut group = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                s.groups.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        groups: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    s.groups
}

/// Library crates whose root turns on `missing_docs` and `unreachable_pub` (a ratchet: issue 15
/// adds the rest as they are split out and documented).
pub const DOCUMENTED: &[&str] = &[
    "countersign-core",
    "countersign-api",
    "countersign-tidy",
    "countersign-template",
    "countersign-yubico-otp",
    "countersign-plugin-manifest",
    "countersign-pki",
    "countersign-plugin-abi",
    "countersign-plugin-ipc",
    "countersign-oath",
    "countersign-simple-token",
    "countersign-token-hotp",
    "countersign-token-totp",
    "countersign-token-sms",
    "countersign-token-email",
    "countersign-token-spass",
    "countersign-token-pw",
    "countersign-token-registration",
    "countersign-token-tan",
    "countersign-token-paper",
    "countersign-token-indexedsecret",
    "countersign-token-yubikey",
    "countersign-token-webauthn",
    "countersign-gateway-http-sms",
    "countersign-gateway-smtp",
    "countersign-gateway-fcm",
    "countersign-client",
    "countersign-process",
    "countersign-store",
    "countersign-card",
    "countersign-hsm",
    "countersign-http",
    "countersign",
    "countersign-webauthn",
    "countersign-powerauth",
];

/// Every [`DOCUMENTED`] crate whose root lost its lints, as a sentence.
pub fn lint_rules(packages: &[Package]) -> Result<Vec<String>, String> {
    let mut broken = Vec::new();
    for p in packages.iter().filter(|p| DOCUMENTED.contains(&p.name.as_str())) {
        let Some(lib) = &p.lib else { continue };
        let text = std::fs::read_to_string(lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        if !text.contains("#![warn(missing_docs, unreachable_pub)]") {
            broken.push(format!(
                "{}: its library root must turn on #![warn(missing_docs, unreachable_pub)]: every public item \
                 documented, nothing public that is not reachable",
                p.name
            ));
        }
    }
    Ok(broken)
}

/// Every module cycle, as a sentence: no crate's top-level modules may depend on each other in
/// a circle (a circle is one module in several files; split it or give its shared part a
/// module of its own).
pub fn cycle_rules(packages: &[Package]) -> Result<Vec<String>, String> {
    let mut broken = Vec::new();
    for p in packages {
        let Some(lib) = &p.lib else { continue };
        let cycles = module_cycles(&module_graph(lib)?);
        for group in &cycles {
            broken.push(format!(
                "{}: the modules {} depend on each other in a circle ({} modules)",
                p.name,
                group.iter().cloned().collect::<Vec<_>>().join(", "),
                group.len()
            ));
        }
    }
    Ok(broken)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn pkg(name: &str, deps: &[&str]) -> Package {
        Package { name: name.into(), deps: deps.iter().map(|d| (*d).to_owned()).collect(), lib: None }
    }

    #[test]
    fn a_confined_dependency_outside_its_crates_is_named() {
        assert!(
            crate_rules(&[pkg("countersign-hsm", &["cryptoki"]), pkg("countersign-store", &["rusqlite"])]).is_empty()
        );
        let broken =
            crate_rules(&[pkg("countersign-plugin-ipc", &["cryptoki"]), pkg("countersign-token-hotp", &["tokio"])]);
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].starts_with("countersign-plugin-ipc depends on cryptoki"), "{broken:?}");
        assert!(broken[1].starts_with("countersign-token-hotp depends on tokio"), "{broken:?}");
        let broken =
            crate_rules(&[pkg("countersign-core", &["countersign-plugin-abi"]), pkg("countersign-plugin-abi", &[])]);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].starts_with("countersign-core depends on countersign-plugin-abi"), "{broken:?}");
    }

    /// Each dependency rule issue 15 names, with the edge it allows and the edge it refuses.
    #[test]
    fn each_layering_rule_refuses_its_bad_edge() {
        let allowed = [
            pkg("countersign-store", &["rusqlite"]),
            pkg("countersign-http", &["axum", "hyper", "countersign"]),
            pkg("countersign", &["countersign-hsm", "countersign-store"]),
            pkg("countersignd", &["countersign-hsm", "countersign-http", "figment"]),
            pkg("countersign-card", &["pcsc"]),
            pkg("countersign-cli", &["countersign-client", "countersign-core"]),
        ];
        assert!(crate_rules(&allowed).is_empty(), "{:?}", crate_rules(&allowed));
        let refused: [(&str, &str); 11] = [
            ("countersign", "rusqlite"),
            ("countersign-http", "rusqlite"),
            ("countersign", "axum"),
            ("countersign-store", "hyper"),
            ("countersign-http", "countersign-hsm"),
            ("countersign-store", "countersign-hsm"),
            ("countersign-core", "tokio"),
            ("countersign-cli", "countersign"),
            ("countersign-cli", "countersign-store"),
            ("countersign", "figment"),
            ("countersign-http", "figment"),
        ];
        for (name, dep) in refused {
            let broken = crate_rules(&[pkg(name, &[dep]), pkg(dep, &[])]);
            assert!(
                broken.iter().any(|b| b.starts_with(&format!("{name} depends on {dep}"))),
                "{name} -> {dep}: {broken:?}"
            );
        }
    }

    #[test]
    fn the_cli_linking_a_part_of_the_daemon_is_named() {
        assert!(crate_rules(&[pkg("countersign-cli", &["countersign-client", "countersign-core"])]).is_empty());
        let broken = crate_rules(&[pkg("countersign-cli", &["countersign-client", "countersign-store"])]);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].starts_with("countersign-cli depends on countersign-store"), "{broken:?}");
    }

    #[test]
    fn a_documented_crate_without_its_lints_is_named() {
        let dir = std::env::temp_dir().join(format!("tidy-lints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (with, without) = (dir.join("with.rs"), dir.join("without.rs"));
        std::fs::write(&with, "//! Doc.\n\n#![warn(missing_docs, unreachable_pub)]\n").unwrap();
        std::fs::write(&without, "//! Doc.\n").unwrap();
        let crate_at = |name: &str, lib: &Path| Package { lib: Some(lib.to_owned()), ..pkg(name, &[]) };
        assert!(lint_rules(&[crate_at("countersign-core", &with)]).unwrap().is_empty());
        let broken =
            lint_rules(&[crate_at("countersign-core", &without), crate_at("countersign-tests", &without)]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(broken.len(), 1, "only listed crates: {broken:?}");
        assert!(broken[0].starts_with("countersign-core: its library root must turn on"), "{broken:?}");
    }

    #[test]
    fn super_paths_that_reach_the_root_are_read() {
        let top = "use super::store::X;\nuse super::{tokens, policy::P};\nfn f() { super::audit::g() }";
        let want: BTreeSet<String> = ["audit", "policy", "store", "tokens"].map(String::from).into();
        assert_eq!(root_paths_through_super(top, 1), want);
        // One level down, `super::` is the parent module; `super::super::` is the root.
        let nested = "use super::sibling;\nuse super::super::store::X;";
        assert_eq!(root_paths_through_super(nested, 2), ["store".to_owned()].into());
        assert_eq!(module_depth(Path::new("src"), Path::new("src/a.rs")), 1);
        assert_eq!(module_depth(Path::new("src"), Path::new("src/a/mod.rs")), 1);
        assert_eq!(module_depth(Path::new("src"), Path::new("src/a/b.rs")), 2);
    }

    #[test]
    fn crate_paths_are_read_in_every_form() {
        let text = "use crate::store::{A, B};\nuse crate::{tokens, policy::{Scope, x}};\n/// [`crate::clock::Clock`]\n\
                    let a = countersign_crate::nope; crate::self_check();";
        let found: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(found, ["clock", "policy", "self_check", "store", "tokens"]);
    }

    #[test]
    fn a_circle_of_modules_is_found_and_a_chain_is_not() {
        let graph = |edges: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in edges {
                g.entry((*a).into()).or_default().insert((*b).into());
                g.entry((*b).into()).or_default();
            }
            g
        };
        assert!(module_cycles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
        let cycles = module_cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "d")]));
        assert_eq!(cycles, vec![["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>()]);
    }
}
