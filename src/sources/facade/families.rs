//! The facade's metric families: one per name, a point per label set, the
//! overflow series last.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Cell, FacadeStore, Series, names};
use crate::model::family::{Attributes, Family, Value, overflow_attributes};

/// A point's labels as text, to sort by: the facade's values are all
/// strings.
fn label_text(attributes: &Attributes) -> impl Iterator<Item = (&str, &str)> {
    attributes.iter().map(|(key, value)| match value {
        Value::Str(s) => (key.otel, s.as_ref()),
        Value::Int(_) | Value::Bool(_) => (key.otel, ""),
    })
}

impl FacadeStore {
    pub(super) fn read_families(&self) -> Vec<Family> {
        let mut points: Vec<(Attributes, Arc<Series>)> = self.series.collect(|key, series| {
            let attributes = key
                .labels()
                .map(|l| {
                    let value = Value::Str(Cow::Owned(l.value().to_owned()));
                    (names::attribute(l.key()), value)
                })
                .collect();
            (attributes, Arc::clone(series))
        });
        points.sort_by(|(a, _), (b, _)| label_text(a).cmp(label_text(b)));
        points.extend(
            self.overflow
                .collect(|_, series| (overflow_attributes(None), Arc::clone(series))),
        );
        let mut families: BTreeMap<&'static str, Family> = BTreeMap::new();
        for (attributes, series) in points {
            let instrument = series.name.instrument;
            let family = families
                .remove(instrument.prometheus_name)
                .unwrap_or_else(|| Family::new(instrument));
            let to_exported = series.name.conversion.to_exported;
            let family = match (&series.cell, &series.name.bounds) {
                (Cell::Counter(n), _) => family
                    .number(attributes, n.load(Ordering::Relaxed) as f64 * to_exported)
                    .started(series.start),
                (Cell::Gauge(bits), _) => {
                    let value = f64::from_bits(bits.load(Ordering::Relaxed));
                    family
                        .number(attributes, value * to_exported)
                        .started(series.start)
                }
                (Cell::Histogram(h), Some(bounds)) => family
                    .histogram(attributes, bounds.exported(), h.snapshot(bounds))
                    .started(series.start),
                (Cell::Histogram(_), None) => family,
            };
            families.insert(instrument.prometheus_name, family);
        }
        families.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FacadeSettings, FacadeStore, MetricsRecorder};
    use crate::model::family::{PointValue, Value};
    use std::sync::Arc;

    #[test]
    fn each_name_is_a_family_with_its_unit_converted() {
        let store = FacadeStore::new(FacadeSettings::default(), 100, Vec::new());
        let recorder = MetricsRecorder {
            store: Arc::clone(&store),
        };
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_gauge!("queue.wait", metrics::Unit::Milliseconds, "Waits.");
            metrics::gauge!("queue.wait", "queue" => "b").set(1500.0);
            metrics::gauge!("queue.wait", "queue" => "a").set(500.0);
            metrics::counter!("orders").increment(3);
        });
        let families = store.read_families();
        let names: Vec<&str> = families
            .iter()
            .map(|f| f.instrument.prometheus_name)
            .collect();
        assert_eq!(names, ["orders", "queue_wait"]);
        let wait = &families[1];
        assert_eq!(wait.instrument.help, "Waits.");
        assert_eq!(wait.instrument.otel_name, "queue.wait");
        let values: Vec<(String, f64)> = wait
            .points
            .iter()
            .map(|p| match (&p.attributes[0].1, &p.value) {
                (Value::Str(label), PointValue::Number(v)) => (label.to_string(), *v),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(values, [("a".into(), 0.5), ("b".into(), 1.5)]);
    }
}
