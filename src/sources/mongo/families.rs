//! MongoDB's metric families: the probe's gauges, the driver's operations
//! and its connection pools.

use std::borrow::Cow;

use super::MongoWatch;
use super::instruments as db;
use crate::model::family::{Family, Value, overflow_attributes};
use crate::model::instruments as i;

impl MongoWatch {
    pub(super) fn read_families(&self) -> Vec<Family> {
        let mut families = Vec::new();
        if let Some(probe) = self.probe.as_ref().and_then(|p| p.last()) {
            let one = |instrument, value: f64| Family::new(instrument).number(Vec::new(), value);
            families.push(one(&db::DATABASE_UP, if probe.healthy { 1.0 } else { 0.0 }));
            families.push(one(
                &db::DATABASE_PING_DURATION,
                probe.latency.as_secs_f64(),
            ));
        }
        let Some(driver) = &self.driver else {
            return families;
        };
        let bounds = driver.bounds.exported();
        let text = |s: &str| Value::Str(Cow::Owned(s.to_owned()));
        let mongodb = (&db::DB_SYSTEM_NAME, Value::Str(Cow::Borrowed("mongodb")));
        let operations = driver.operations().into_iter().fold(
            Family::new(&db::DB_CLIENT_OPERATION_DURATION),
            |family, (key, data, start)| {
                let attributes = match key {
                    None => overflow_attributes(None),
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
                family.histogram(attributes, bounds, data).started(start)
            },
        );
        families.push(operations);

        let pool = |name: &str| (&db::DB_CONNECTION_POOL_NAME, text(name));
        let mut count = Family::new(&db::DB_CLIENT_CONNECTION_COUNT);
        let mut max = Family::new(&db::DB_CLIENT_CONNECTION_MAX);
        let mut pending = Family::new(&db::DB_CLIENT_CONNECTION_PENDING_REQUESTS);
        let mut timeouts = Family::new(&db::DB_CLIENT_CONNECTION_TIMEOUTS);
        let mut create = Family::new(&db::DB_CLIENT_CONNECTION_CREATE_TIME);
        let mut wait = Family::new(&db::DB_CLIENT_CONNECTION_WAIT_TIME);
        for p in driver.pools() {
            for (state, n) in [("idle", p.idle), ("used", p.used)] {
                let state = (&db::DB_CONNECTION_STATE, Value::Str(Cow::Borrowed(state)));
                count = count.number(vec![state, pool(&p.name)], n as f64);
            }
            max = max.number(vec![pool(&p.name)], p.max as f64);
            pending = pending.number(vec![pool(&p.name)], p.pending as f64);
            timeouts = timeouts
                .number(vec![pool(&p.name)], p.timeouts as f64)
                .started(p.start);
            create = create
                .histogram(vec![pool(&p.name)], bounds, p.create_time)
                .started(p.start);
            wait = wait
                .histogram(vec![pool(&p.name)], bounds, p.wait_time)
                .started(p.start);
        }
        families.extend([count, max, pending, timeouts, create, wait]);
        families
    }
}
