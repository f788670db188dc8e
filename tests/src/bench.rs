//! Shared pieces of the benchmark binaries: a measured run, percentiles, rounds reported by
//! their median, a description of the machine, and the daemon's HSM operation counts.

use std::time::Duration;

/// One measurement: how many operations in how long, and their latency percentiles.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub ops: u64,
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Run {
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// A run from its latencies.
pub fn summarise(label: String, mut lat: Vec<Duration>, secs: f64) -> Run {
    lat.sort_unstable();
    Run { label, ops: lat.len() as u64, secs, p50_ms: percentile(&lat, 0.50), p99_ms: percentile(&lat, 0.99) }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Markdown table rows: for each row index, the median round of that row.
pub fn median_rows(rounds: &[Vec<Run>], unit: &str) -> String {
    let mut out = format!("| path | {unit}/s | p50 ms | p99 ms |\n|---|---:|---:|---:|\n");
    for row in 0..rounds.first().map_or(0, Vec::len) {
        let mut runs: Vec<&Run> = rounds.iter().map(|r| &r[row]).collect();
        runs.sort_by(|a, b| a.per_sec().total_cmp(&b.per_sec()));
        let r = runs[runs.len() / 2];
        out += &format!("| {} | {:.0} | {:.3} | {:.3} |\n", r.label, r.per_sec(), r.p50_ms, r.p99_ms);
    }
    out
}

/// Peak and current RSS and thread count of a process, as a sentence.
pub fn memory(pid: Option<u32>, who: &str) -> String {
    let status = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok()).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
            .unwrap_or_default()
    };
    format!(
        "{who} memory after the run: peak RSS {} kB, current RSS {} kB, threads {}.\n",
        field("VmHWM:"),
        field("VmRSS:"),
        field("Threads:")
    )
}

/// CPU, cores, memory and kernel of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0) / 1024 / 1024)
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} GiB RAM, Linux {}", kernel.trim())
}

/// Writes the report to `out` (creating its folder) if one was given.
pub fn write_report(out: Option<&std::path::Path>, report: &str) -> std::io::Result<()> {
    if let Some(p) = out {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, report)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// Runs `op(thread)` in a loop on `threads` threads for `dur`; the latencies and the seconds.
pub fn on_threads(threads: usize, dur: Duration, op: impl Fn(usize) + Send + Sync + 'static) -> (Vec<Duration>, f64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let op = Arc::new(op);
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (stop, op) = (stop.clone(), op.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t0 = std::time::Instant::now();
                    op(t);
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let lat = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
    (lat, start.elapsed().as_secs_f64())
}

/// One request a client sends: method, path and JSON body.
pub type ClientRequest = (hyper::Method, String, Option<Vec<u8>>);

/// `clients` clients, each on its own kept-alive connection to `sock`, send `request(client)`
/// in a loop for `dur`; `ok` judges each answer (status, body). The latencies, the seconds,
/// and how many answers were not ok.
pub fn on_socket(
    sock: &std::path::Path,
    clients: usize,
    dur: Duration,
    request: impl Fn(usize) -> ClientRequest + Send + Sync + 'static,
    ok: impl Fn(u16, &[u8]) -> bool + Send + Sync + 'static,
) -> (Vec<Duration>, f64, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (request, ok) = (Arc::new(request), Arc::new(ok));
    let failed = Arc::new(AtomicU64::new(0));
    let (lat, secs) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let start = std::time::Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (sock, stop, request, ok, failed) =
                (sock.to_path_buf(), stop.clone(), request.clone(), ok.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = countersign_client::Connection::connect(&sock).await.expect("connect");
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (method, uri, body) = request(c);
                    let t0 = std::time::Instant::now();
                    let (st, answer) = conn.raw(method, &uri, body).await.expect("request");
                    lat.push(t0.elapsed());
                    if !ok(st.as_u16(), &answer) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(dur).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        (all, start.elapsed().as_secs_f64())
    });
    (lat, secs, failed.load(Ordering::Relaxed))
}

/// A daemon profiled under callgrind (`--callgrind DIR` of the bench binaries): instruction
/// counts repeat under load where wall-clock times do not. The daemon runs under
/// `valgrind --tool=callgrind`; each measured row is zeroed before and dumped after
/// (`callgrind_control`), so a dump holds that row's requests only.
#[derive(Debug, Clone)]
pub struct Callgrind {
    pub dir: std::path::PathBuf,
}

impl Callgrind {
    /// The program and arguments to run the daemon under (`Daemon::wrapper`).
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "--quiet".into(),
            format!("--callgrind-out-file={}/callgrind.out.%p", self.dir.display()),
        ]
    }

    /// Runs `row` with the daemon's counters zeroed before and dumped (named `label`) after;
    /// prints the requests the row made, to divide the dump's totals by.
    pub fn measure(&self, pid: Option<u32>, label: &str, row: impl FnOnce() -> Run) -> Run {
        let pid = pid.expect("the daemon runs").to_string();
        let control = |args: &[&str]| {
            let out = std::process::Command::new("callgrind_control").args(args).arg(&pid).output();
            assert!(out.is_ok_and(|o| o.status.success()), "callgrind_control {args:?} failed");
        };
        control(&["-z"]);
        let run = row();
        control(&["-d", label]);
        eprintln!("callgrind: {label}: {} requests in {:.1} s", run.ops, run.secs);
        run
    }
}

/// CPU time used so far, in seconds (user, system): of a process and, with `children`, of its
/// children that are still running (the daemon's plugin workers), read from `/proc`.
pub fn cpu_of(pid: u32, children: bool) -> (f64, f64) {
    // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks; the fields
    // after the command name (which may hold spaces) start at field 3.
    fn stat(path: &str) -> Option<(u32, f64, f64)> {
        let s = std::fs::read_to_string(path).ok()?;
        let rest: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = 100.0;
        Some((
            rest.get(1)?.parse().ok()?,
            rest.get(11)?.parse::<f64>().ok()? / ticks,
            rest.get(12)?.parse::<f64>().ok()? / ticks,
        ))
    }
    let (mut user, mut sys) = stat(&format!("/proc/{pid}/stat")).map_or((0.0, 0.0), |(_, u, s)| (u, s));
    if !children {
        return (user, sys);
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some((ppid, u, s)) = stat(&format!("/proc/{child}/stat")) {
            if ppid == pid {
                user += u;
                sys += s;
            }
        }
    }
    (user, sys)
}

/// What a row cost in CPU, per operation: the daemon's (with its plugin workers) and this
/// process's (the clients'), each user and system, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuPerOp {
    pub daemon_user_us: f64,
    pub daemon_sys_us: f64,
    pub client_user_us: f64,
    pub client_sys_us: f64,
}

/// Runs `row` and measures the CPU it cost the daemon `pid` and this process, per operation.
pub fn with_cpu(pid: Option<u32>, row: impl FnOnce() -> Run) -> (Run, CpuPerOp) {
    let pid = pid.expect("the daemon runs");
    let me = std::process::id();
    let (d0, c0) = (cpu_of(pid, true), cpu_of(me, false));
    let run = row();
    let (d1, c1) = (cpu_of(pid, true), cpu_of(me, false));
    let per = |a: f64, b: f64| (b - a) * 1e6 / run.ops.max(1) as f64;
    let cpu = CpuPerOp {
        daemon_user_us: per(d0.0, d1.0),
        daemon_sys_us: per(d0.1, d1.1),
        client_user_us: per(c0.0, c1.0),
        client_sys_us: per(c0.1, c1.1),
    };
    (run, cpu)
}

/// A Markdown table of the median (by the daemon's total) CPU per operation of each row.
pub fn cpu_rows(labels: &[String], rounds: &[Vec<CpuPerOp>]) -> String {
    let mut out = "| path | daemon user µs | daemon system µs | clients user µs | clients system µs |\n\
                   |---|---:|---:|---:|---:|\n"
        .to_owned();
    for (row, label) in labels.iter().enumerate() {
        let mut cpus: Vec<CpuPerOp> = rounds.iter().filter_map(|r| r.get(row).copied()).collect();
        cpus.sort_by(|a, b| (a.daemon_user_us + a.daemon_sys_us).total_cmp(&(b.daemon_user_us + b.daemon_sys_us)));
        if let Some(c) = cpus.get(cpus.len() / 2) {
            out += &format!(
                "| {label} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
                c.daemon_user_us, c.daemon_sys_us, c.client_user_us, c.client_sys_us
            );
        }
    }
    out
}

/// The daemon's HSM operations so far, by operation (`/metrics` on admin.sock).
pub fn hsm_ops(d: &crate::Daemon) -> std::collections::BTreeMap<String, u64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let text = rt.block_on(async {
        let mut conn = countersign_client::Connection::connect(&d.admin_sock()).await.expect("connect");
        let (_, body) = conn.raw(hyper::Method::GET, "/metrics", None).await.expect("metrics");
        String::from_utf8_lossy(&body).into_owned()
    });
    let prefix = "countersign_hsm_operation_duration_seconds_count{op=\"";
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(prefix)?;
            let (op, n) = rest.split_once("\"} ")?;
            Some((op.to_owned(), n.trim().parse().ok()?))
        })
        .collect()
}
