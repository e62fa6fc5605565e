//! The request store as metric families: the three HTTP server histograms
//! per label set, and the requests in flight per method.

use std::borrow::Cow;
use std::sync::Arc;

use super::labelling::Resolver;
use super::{RequestStore, SeriesLabels, SeriesSnapshot};
use crate::model::family::{Attributes, Family, Value, overflow_attributes};
use crate::model::histogram::HistogramSnapshot;
use crate::model::instruments::{self as i, Instrument};
use crate::source::{BoxFuture, Section, Source, Wants};

/// Selects one of the histograms of a series.
type Pick = fn(&SeriesSnapshot) -> &HistogramSnapshot;

impl Source for RequestStore {
    fn families(&self, wants: Wants<'_>, out: &mut Vec<Family>) {
        let series = self.snapshot();
        let resolver = self.labelling.resolver();
        let attributes: Vec<Attributes> = series
            .iter()
            .map(|s| self.attributes(&s.labels, &resolver))
            .collect();
        let bounds = &self.bounds;
        let histograms: [(&'static Instrument, &Arc<[f64]>, Pick); 3] = [
            (
                &i::HTTP_SERVER_REQUEST_DURATION,
                bounds.duration.exported(),
                |s| &s.duration,
            ),
            (
                &i::HTTP_SERVER_REQUEST_BODY_SIZE,
                bounds.request_size.exported(),
                |s| &s.request_size,
            ),
            (
                &i::HTTP_SERVER_RESPONSE_BODY_SIZE,
                bounds.response_size.exported(),
                |s| &s.response_size,
            ),
        ];
        let histograms = histograms
            .into_iter()
            .filter(|(instrument, ..)| wants(instrument))
            .map(|(instrument, bounds, pick)| {
                series.iter().zip(&attributes).fold(
                    Family::new(instrument),
                    |family, (s, attributes)| {
                        family
                            .histogram(attributes.clone(), bounds, pick(s).clone())
                            .started(s.start)
                    },
                )
            });
        out.extend(histograms);
        if !wants(&i::HTTP_SERVER_ACTIVE_REQUESTS) {
            return;
        }
        let active = self.active().fold(
            Family::new(&i::HTTP_SERVER_ACTIVE_REQUESTS),
            |family, (method, n)| {
                let method = Value::Str(Cow::Borrowed(method.as_str()));
                family.number(vec![(&i::HTTP_REQUEST_METHOD, method)], n as f64)
            },
        );
        out.push(active);
    }

    fn health(&self) -> BoxFuture<'_, Option<Section>> {
        Box::pin(async { Some(Section::report("application", self.summary().application())) })
    }
}

impl RequestStore {
    fn attributes(&self, labels: &SeriesLabels, resolver: &Resolver<'_>) -> Attributes {
        let key = match labels {
            SeriesLabels::Series(key) => key,
            SeriesLabels::Overflow(key) => return overflow_attributes(key.error_type()),
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
        ];
        // Only a status that was sent (the semantic conventions' rule); a
        // class is a string, on `/metrics` and over OTLP alike.
        if let Some(code) = key.status {
            let status = match self.labelling.status_label(key.status) {
                Some(class) => Value::Str(Cow::Owned(class)),
                None => Value::Int(i64::from(code.as_u16())),
            };
            attributes.push((&i::HTTP_RESPONSE_STATUS_CODE, status));
        }
        if let Some(error) = key.error_type() {
            attributes.push((&i::ERROR_TYPE, Value::Str(error)));
        }
        let own = resolver.labels(key.labels).into_iter();
        attributes.extend(own.map(|(name, value)| (name, Value::Str(Cow::Borrowed(value)))));
        attributes
    }
}
