//! One reading of the whole state, as instruments and their points: what
//! every exporter encodes. Reading it once per scrape or export, and nowhere
//! else, is what makes `/metrics` and OTLP carry the same numbers.

use std::borrow::Cow;

use crate::Shared;
use crate::histogram::HistogramSnapshot;
use crate::http::store::SeriesSnapshot;
use crate::instruments::{self as i, Attribute, Instrument};

/// An instrument with its points.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) instrument: &'static Instrument,
    pub(crate) points: Vec<Point>,
}

/// One point: an attribute set and a value.
#[derive(Debug)]
pub(crate) struct Point {
    pub(crate) attributes: Vec<(&'static Attribute, Value)>,
    pub(crate) value: PointValue,
}

/// An attribute value, typed as the semantic conventions type it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(Cow<'static, str>),
    Int(i64),
    Bool(bool),
}

impl Value {
    /// The Prometheus label value.
    pub(crate) fn to_label(&self) -> Cow<'static, str> {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(n) => Cow::Owned(n.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

#[derive(Debug)]
pub(crate) enum PointValue {
    Number(f64),
    Histogram {
        bounds: &'static [f64],
        data: HistogramSnapshot,
    },
}

impl Family {
    fn new(instrument: &'static Instrument) -> Self {
        Self {
            instrument,
            points: Vec::new(),
        }
    }

    fn number(mut self, attributes: Vec<(&'static Attribute, Value)>, value: f64) -> Self {
        self.points.push(Point {
            attributes,
            value: PointValue::Number(value),
        });
        self
    }
}

/// Reads everything, in a fixed order.
pub(crate) fn read(shared: &Shared) -> Vec<Family> {
    let mut families = requests(shared);
    families.extend(system(shared));
    #[cfg(feature = "mongodb")]
    if let Some(mongo) = &shared.mongo {
        families.extend(database(mongo));
    }
    let c = &shared.config;
    let build_info = vec![
        (
            &i::SERVERWATCH_VERSION,
            Value::Str(Cow::Borrowed(env!("CARGO_PKG_VERSION"))),
        ),
        (
            &i::SERVICE_NAME,
            Value::Str(Cow::Owned(c.service_name.clone())),
        ),
        (
            &i::SERVICE_VERSION,
            Value::Str(Cow::Owned(c.service_version.clone())),
        ),
    ];
    families.push(Family::new(&i::BUILD_INFO).number(build_info, 1.0));
    families
}

fn requests(shared: &Shared) -> Vec<Family> {
    let store = &shared.requests;
    let series = store.snapshot();
    let attributes: Vec<Vec<(&'static Attribute, Value)>> =
        series.iter().map(series_attributes).collect();

    let histograms: [(&'static Instrument, &'static [f64], PickHistogram); 3] = [
        (
            &i::HTTP_SERVER_REQUEST_DURATION,
            store.duration_bounds.exported,
            |s| &s.duration,
        ),
        (
            &i::HTTP_SERVER_REQUEST_BODY_SIZE,
            store.size_bounds.exported,
            |s| &s.request_size,
        ),
        (
            &i::HTTP_SERVER_RESPONSE_BODY_SIZE,
            store.size_bounds.exported,
            |s| &s.response_size,
        ),
    ];
    let mut families: Vec<Family> = histograms
        .into_iter()
        .map(|(instrument, bounds, pick)| Family {
            instrument,
            points: series
                .iter()
                .zip(&attributes)
                .map(|(s, attributes)| Point {
                    attributes: attributes.clone(),
                    value: PointValue::Histogram {
                        bounds,
                        data: pick(s).clone(),
                    },
                })
                .collect(),
        })
        .collect();

    let mut active = Family::new(&i::HTTP_SERVER_ACTIVE_REQUESTS);
    for (method, n) in store.active() {
        let method = vec![(
            &i::HTTP_REQUEST_METHOD,
            Value::Str(Cow::Borrowed(method.as_str())),
        )];
        active = active.number(method, n as f64);
    }
    families.push(active);
    families
}

/// Selects one of the histograms of a series.
type PickHistogram = fn(&SeriesSnapshot) -> &HistogramSnapshot;

fn series_attributes(s: &SeriesSnapshot) -> Vec<(&'static Attribute, Value)> {
    let Some(key) = &s.key else {
        return vec![(&i::OVERFLOW, Value::Bool(true))];
    };
    let mut attributes = vec![
        (
            &i::HTTP_REQUEST_METHOD,
            Value::Str(Cow::Borrowed(key.method.as_str())),
        ),
        (
            &i::HTTP_ROUTE,
            Value::Str(Cow::Owned(key.route.to_string())),
        ),
        (
            &i::HTTP_RESPONSE_STATUS_CODE,
            Value::Int(i64::from(key.status)),
        ),
    ];
    if let Some(error) = key.error_type() {
        attributes.push((&i::ERROR_TYPE, Value::Str(Cow::Owned(error))));
    }
    attributes
}

fn system(shared: &Shared) -> Vec<Family> {
    let s = shared.system.snapshot();
    let p = &s.process;
    let one = |instrument, value: f64| Family::new(instrument).number(Vec::new(), value);
    let mut families = vec![
        one(&i::PROCESS_RESIDENT_MEMORY, p.resident_bytes as f64),
        one(&i::PROCESS_VIRTUAL_MEMORY, p.virtual_bytes as f64),
        one(&i::PROCESS_START_TIME, p.start_time_seconds as f64),
        one(&i::PROCESS_UPTIME, s.uptime_seconds),
        one(&i::PROCESS_THREADS, p.threads as f64),
    ];
    for (instrument, value) in [
        (&i::PROCESS_OPEN_FDS, p.open_fds),
        (&i::PROCESS_MAX_FDS, p.max_fds),
    ] {
        if let Some(value) = value {
            families.push(one(instrument, value as f64));
        }
    }
    families.push(match p.cpu_user_system {
        Some((user, system)) => Family::new(&i::PROCESS_CPU_TIME)
            .number(
                vec![(&i::CPU_MODE, Value::Str(Cow::Borrowed("user")))],
                user,
            )
            .number(
                vec![(&i::CPU_MODE, Value::Str(Cow::Borrowed("system")))],
                system,
            ),
        None => one(&i::PROCESS_CPU_TIME, p.cpu_seconds),
    });

    let m = &s.memory;
    let states = |attribute: &'static Attribute, values: &[(&'static str, u64)]| {
        values
            .iter()
            .map(|(state, value)| Point {
                attributes: vec![(attribute, Value::Str(Cow::Borrowed(state)))],
                value: PointValue::Number(*value as f64),
            })
            .collect()
    };
    families.push(Family {
        instrument: &i::SYSTEM_MEMORY_USAGE,
        points: states(
            &i::SYSTEM_MEMORY_STATE,
            &[
                ("used", m.used),
                ("free", m.free),
                ("buffers", m.buffers),
                ("cached", m.cached),
            ],
        ),
    });
    families.push(one(&i::SYSTEM_MEMORY_LIMIT, m.total as f64));
    families.push(Family {
        instrument: &i::SYSTEM_PAGING_USAGE,
        points: states(
            &i::SYSTEM_PAGING_STATE,
            &[("used", s.swap.used), ("free", s.swap.free)],
        ),
    });
    families
}

#[cfg(feature = "mongodb")]
fn database(mongo: &crate::mongo::MongoWatch) -> Vec<Family> {
    use crate::instruments::database as db;

    let mut families = Vec::new();
    if let Some(probe) = mongo.probe.as_ref().and_then(|p| p.last()) {
        let one = |instrument, value: f64| Family::new(instrument).number(Vec::new(), value);
        families.push(one(&db::DATABASE_UP, if probe.healthy { 1.0 } else { 0.0 }));
        families.push(one(
            &db::DATABASE_PING_DURATION,
            probe.latency.as_secs_f64(),
        ));
    }
    let Some(driver) = &mongo.driver else {
        return families;
    };
    let text = |s: &str| Value::Str(Cow::Owned(s.to_owned()));
    let mongodb = (&db::DB_SYSTEM_NAME, Value::Str(Cow::Borrowed("mongodb")));
    families.push(Family {
        instrument: &db::DB_CLIENT_OPERATION_DURATION,
        points: driver
            .operations()
            .into_iter()
            .map(|(key, data)| {
                let attributes = match key {
                    None => vec![(&i::OVERFLOW, Value::Bool(true))],
                    Some(k) => {
                        let mut a = vec![
                            mongodb.clone(),
                            (&db::DB_OPERATION_NAME, text(&k.operation)),
                            (&db::DB_NAMESPACE, text(&k.namespace)),
                        ];
                        if let Some(collection) = &k.collection {
                            a.push((&db::DB_COLLECTION_NAME, text(collection)));
                        }
                        if let Some(error) = &k.error {
                            a.push((&i::ERROR_TYPE, text(error)));
                        }
                        a
                    }
                };
                Point {
                    attributes,
                    value: PointValue::Histogram {
                        bounds: driver.bounds.exported,
                        data,
                    },
                }
            })
            .collect(),
    });

    let pools = driver.pools();
    let pool = |name: &str| (&db::DB_CONNECTION_POOL_NAME, text(name));
    let mut count = Family::new(&db::DB_CLIENT_CONNECTION_COUNT);
    let mut max = Family::new(&db::DB_CLIENT_CONNECTION_MAX);
    let mut pending = Family::new(&db::DB_CLIENT_CONNECTION_PENDING_REQUESTS);
    let mut timeouts = Family::new(&db::DB_CLIENT_CONNECTION_TIMEOUTS);
    let mut create = Family::new(&db::DB_CLIENT_CONNECTION_CREATE_TIME);
    let mut wait = Family::new(&db::DB_CLIENT_CONNECTION_WAIT_TIME);
    for p in pools {
        for (state, n) in [("idle", p.idle), ("used", p.used)] {
            let state = (&db::DB_CONNECTION_STATE, Value::Str(Cow::Borrowed(state)));
            count = count.number(vec![state, pool(&p.name)], n as f64);
        }
        max = max.number(vec![pool(&p.name)], p.max as f64);
        pending = pending.number(vec![pool(&p.name)], p.pending as f64);
        timeouts = timeouts.number(vec![pool(&p.name)], p.timeouts as f64);
        for (family, data) in [(&mut create, p.create_time), (&mut wait, p.wait_time)] {
            family.points.push(Point {
                attributes: vec![pool(&p.name)],
                value: PointValue::Histogram {
                    bounds: driver.bounds.exported,
                    data,
                },
            });
        }
    }
    families.extend([count, max, pending, timeouts, create, wait]);
    families
}
