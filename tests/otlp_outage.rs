//! OTLP through a collector outage, against a real receiver (rotel) that is
//! stopped and started again on the same ports: the service keeps answering
//! at full speed, memory stays flat, the outage is logged once when it starts
//! and once when it ends, and nothing is lost (exports are cumulative). Also:
//! a collector that is not there yet when the service starts.
//!
//! A test binary of its own: it installs a global `tracing` subscriber that
//! captures the log lines, to count them.

mod support;

use std::time::{Duration, Instant};

use serverwatch::{OtlpProtocol, ServerWatch};
use support::launcher::HeldPorts;
use support::otlp::{
    DEADLINE, FAILED, RECOVERED, STILL_FAILING, has_requests, over_protocols, port_for,
};
use support::rotel::Rotel;
use support::{TestApp, eventually, logs, serve_sample};

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(500);

/// The tests of this binary run one at a time: RSS is the whole process's,
/// and latencies are measured.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------
// Captured log lines

/// What one exporter logged: the captured lines with its endpoint (tests
/// run in parallel; each exporter logs its own) since it was built.
struct ExporterLog {
    since: logs::Mark,
    port: u16,
}

impl ExporterLog {
    /// Made before the exporter that sends to `port` is built.
    fn new(port: u16) -> Self {
        Self {
            since: logs::mark(),
            port,
        }
    }

    fn lines(&self) -> Vec<String> {
        logs::lines_with(self.since, &format!("127.0.0.1:{}/", self.port))
    }

    /// The outage events ([`FAILED`] and [`RECOVERED`]) among the lines from
    /// the `from`-th on.
    fn outage_events(&self, from: usize) -> Vec<&'static str> {
        self.lines()
            .iter()
            .skip(from)
            .filter_map(|l| {
                if l.contains(FAILED) {
                    Some(FAILED)
                } else if l.contains(RECOVERED) {
                    Some(RECOVERED)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Fails unless the outage that started after the `from`-th line was
    /// logged once when it started and once when it ended: the events are
    /// `failed, recovered`. Later events may only be further whole outages
    /// (`failed, recovered`), which happen when the machine is so slow that
    /// an export to the running receiver outlasts the timeout; a warning per
    /// interval (`failed, failed`) fails.
    fn assert_logged_once(&self, from: usize) {
        let events = self.outage_events(from);
        let lines = || self.lines()[from..].join("\n");
        assert!(
            events.len() >= 2 && events[0] == FAILED && events[1] == RECOVERED,
            "the outage must be logged once when it starts and once when it ends, got \
             {events:?}:\n{}",
            lines()
        );
        assert!(
            events.windows(2).all(|w| w[0] != w[1]),
            "one line per outage and per recovery, got {events:?}:\n{}",
            lines()
        );
        if events.len() > 2 {
            eprintln!("note: exports to the running receiver also timed out later: {events:?}");
        }
    }

    /// Waits until the exporter is not in an outage (a slow machine can make
    /// an export to a running receiver time out).
    async fn wait_not_failing(&self) {
        eventually("the exporter to be out of any outage", DEADLINE, || async {
            (self.outage_events(0).last() != Some(&FAILED)).then_some(())
        })
        .await;
    }
}

// ---------------------------------------------------------------------------
// Load

/// Requests sent during one phase, with the latency of each.
#[derive(Debug)]
struct Load {
    sent: u64,
    latencies: Vec<Duration>,
}

impl Load {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let i = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[i]
    }

    fn max(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    fn summary(&self) -> String {
        format!(
            "{} requests, p50 {:?}, p99 {:?}, max {:?}",
            self.sent,
            self.percentile(0.5),
            self.percentile(0.99),
            self.max()
        )
    }
}

/// Most rounds (one request to each app) a task sends in one phase,
/// whatever the duration.
const MAX_PER_TASK: usize = 20_000;
/// Longest a phase goes on to reach its least number of rounds.
const LOAD_CAP: Duration = Duration::from_secs(60);
/// Pause between two rounds of a task: a steady load, not a flood.
const PAUSE: Duration = Duration::from_millis(1);

/// `tasks` tasks each sending GET /items/{n} for `duration` and at least
/// `min_rounds` rounds (enough samples on a slow machine; at most
/// [`LOAD_CAP`]), one request after the other, to each of `apps` in turn;
/// every answer must be 200. The
/// loads of the apps, in the order of `apps`: measured in the same moments,
/// they see the same noise from the rest of the machine.
async fn load(apps: &[&TestApp], tasks: usize, duration: Duration, min_rounds: usize) -> Vec<Load> {
    let start = Instant::now();
    let handles: Vec<_> = (1..=tasks)
        .map(|task| {
            let client = apps[0].client.clone();
            let urls: Vec<String> = apps
                .iter()
                .map(|app| app.url(&format!("/items/{task}")))
                .collect();
            tokio::spawn(async move {
                let mut latencies = vec![Vec::new(); urls.len()];
                let mut rounds = 0;
                while (start.elapsed() < duration || rounds < min_rounds)
                    && start.elapsed() < LOAD_CAP
                    && rounds < MAX_PER_TASK
                {
                    // Each app in turn goes first: under CPU starvation the
                    // first request after the pause also pays for waking the
                    // threads up.
                    for k in 0..urls.len() {
                        let i = (k + rounds) % urls.len();
                        let start = Instant::now();
                        let response = client.get(&urls[i]).send().await.unwrap();
                        assert_eq!(response.status().as_u16(), 200, "GET {}", urls[i]);
                        response.bytes().await.unwrap();
                        latencies[i].push(start.elapsed());
                    }
                    rounds += 1;
                    tokio::time::sleep(PAUSE).await;
                }
                latencies
            })
        })
        .collect();
    let mut loads: Vec<Load> = apps
        .iter()
        .map(|_| Load {
            sent: 0,
            latencies: Vec::new(),
        })
        .collect();
    for handle in handles {
        let per_app = handle.await.expect("a load task");
        for (load, latencies) in loads.iter_mut().zip(per_app) {
            load.sent += latencies.len() as u64;
            load.latencies.extend(latencies);
        }
    }
    loads
}

/// [`load`] on one app.
async fn load_one(app: &TestApp, tasks: usize, duration: Duration, min_rounds: usize) -> Load {
    load(&[app], tasks, duration, min_rounds).await.remove(0)
}

/// The same routes watched without OTLP: the baseline the latencies of the
/// exporting app are compared with.
async fn control_app() -> TestApp {
    let watch = ServerWatch::builder()
        .service_name("control")
        .build()
        .unwrap();
    serve_sample(&watch).await
}

/// Fails unless `otlp`, measured while exports fail, answers about as fast
/// as `control`, measured in the same moments: median within 3× + 5 ms,
/// slowest within 2× + [`MAX_LATENCY`] of the control's slowest.
fn assert_full_speed(otlp: &Load, control: &Load, when: &str) {
    let (p50, control_p50) = (otlp.percentile(0.5), control.percentile(0.5));
    assert!(
        p50 <= control_p50 * 3 + Duration::from_millis(5),
        "{when}: median latency {p50:?}, without OTLP {control_p50:?}\n\
         with OTLP:    {}\nwithout OTLP: {}",
        otlp.summary(),
        control.summary()
    );
    assert!(
        otlp.max() < control.max() * 2 + MAX_LATENCY,
        "{when}: slowest request {:?}, without OTLP {:?}\n\
         with OTLP:    {}\nwithout OTLP: {}",
        otlp.max(),
        control.max(),
        otlp.summary(),
        control.summary()
    );
}

/// The process RSS `/health` reports.
async fn rss(app: &TestApp) -> u64 {
    let health = app.health().await;
    health["memory_analysis"]["process"]["process"]["memory_info"]["rss"]
        .as_u64()
        .unwrap_or_else(|| panic!("no RSS in /health: {health}"))
}

fn watch_for(endpoint: String, protocol: OtlpProtocol) -> ServerWatch {
    support::otlp::builder("otlp-outage", endpoint, protocol)
        .otlp_export_interval(INTERVAL)
        .otlp_timeout(TIMEOUT)
        .build()
        .expect("a valid OTLP configuration")
}

// ---------------------------------------------------------------------------
// The outage

/// How much slower than (twice) the slowest answer of the control app the
/// slowest answer of the exporting app may be: below what an export blocking
/// the request path would cost (the export timeout is 500 ms), above
/// scheduling noise.
const MAX_LATENCY: Duration = Duration::from_millis(250);
/// RSS growth allowed across the outage.
const MAX_RSS_GROWTH: u64 = 32 << 20;

async fn collector_outage(protocol: OtlpProtocol) {
    let _serial = SERIAL.lock().await;
    let mut rotel = Rotel::start().await;
    let log = ExporterLog::new(rotel.port(protocol));
    let watch = watch_for(rotel.endpoint(protocol), protocol);
    let app = serve_sample(&watch).await;
    let control = control_app().await;

    // A: the collector is up; exports arrive.
    let a = load_one(&app, 4, Duration::from_secs(1), 25).await;
    rotel
        .wait_for_batch("the phase A requests", DEADLINE, has_requests(a.sent))
        .await;
    log.wait_not_failing().await;
    let rss_before = rss(&app).await;

    // B: the collector is down; the service does not notice.
    let outage_start = log.lines().len();
    rotel.stop();
    let mut loads = load(&[&app, &control], 4, Duration::from_millis(2500), 25).await;
    let (b, b_control) = (loads.remove(0), loads.remove(0));
    let rss_after = rss(&app).await;
    eprintln!(
        "{protocol:?} outage, phase A: {}\n  phase B: {}\n  phase B without OTLP: {}\n  \
         RSS {rss_before} -> {rss_after}",
        a.summary(),
        b.summary(),
        b_control.summary()
    );
    assert_full_speed(&b, &b_control, "during the outage");
    assert!(b.sent >= 20, "the service kept answering: {}", b.summary());
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth < MAX_RSS_GROWTH,
        "RSS grew by {growth} bytes during the outage ({rss_before} -> {rss_after})"
    );
    // Logged once, not once per interval; retried every interval meanwhile.
    eventually("the outage to be logged", DEADLINE, || async {
        (!log.outage_events(outage_start).is_empty()).then_some(())
    })
    .await;
    let during = &log.lines()[outage_start..];
    assert_eq!(
        log.outage_events(outage_start),
        [FAILED],
        "one warning for the whole outage:\n{}",
        during.join("\n")
    );
    assert!(
        during.iter().filter(|l| l.contains(STILL_FAILING)).count() >= 2,
        "an export was tried at each interval:\n{}",
        during.join("\n")
    );

    // C: the collector is back on the same ports; it gets everything.
    rotel.restart().await;
    let c = load_one(&app, 2, Duration::from_millis(300), 5).await;
    let total = a.sent + b.sent + c.sent;
    rotel
        .wait_for_batch(
            "every request of the three phases",
            DEADLINE,
            has_requests(total),
        )
        .await;
    eventually("the recovery to be logged", DEADLINE, || async {
        log.outage_events(outage_start)
            .contains(&RECOVERED)
            .then_some(())
    })
    .await;
    log.assert_logged_once(outage_start);

    watch.shutdown().await;
}

// ---------------------------------------------------------------------------
// Absent at start

async fn collector_absent_at_start(protocol: OtlpProtocol) {
    let _serial = SERIAL.lock().await;
    // Held, so that nothing else takes them before rotel does.
    let ports = HeldPorts::fresh(2);
    let port = port_for(protocol, ports.ports());
    let log = ExporterLog::new(port);
    let watch = watch_for(support::otlp::endpoint(port), protocol);
    let app = serve_sample(&watch).await;
    let control = control_app().await;

    // Requests are served normally while exports fail.
    let mut loads = load(&[&app, &control], 2, Duration::from_millis(600), 25).await;
    let (before, before_control) = (loads.remove(0), loads.remove(0));
    assert_full_speed(&before, &before_control, "with no collector");
    eventually("the failed export to be logged", DEADLINE, || async {
        (!log.outage_events(0).is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        log.outage_events(0),
        [FAILED],
        "one warning while there is no collector:\n{}",
        log.lines().join("\n")
    );

    let rotel = Rotel::start_on(ports).await;
    let after = load_one(&app, 2, Duration::from_millis(300), 5).await;
    rotel
        .wait_for_batch(
            "every request, from before the collector started too",
            DEADLINE,
            has_requests(before.sent + after.sent),
        )
        .await;
    eventually("the recovery to be logged", DEADLINE, || async {
        log.outage_events(0).contains(&RECOVERED).then_some(())
    })
    .await;
    log.assert_logged_once(0);

    watch.shutdown().await;
}

over_protocols! {
    collector_outage => [http_protobuf, grpc];
    collector_absent_at_start => [http_protobuf, grpc];
}
