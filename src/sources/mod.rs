//! What is watched. Each source owns its state, reads it when an exporter
//! asks, and gives its metric families and its `/health` section through
//! [`Source`](crate::source::Source). Each brings its settings as a
//! [`Part`](crate::part::Part), registered in [`parts`]: an optional one is
//! one line there and one at its `mod`.

pub(crate) mod checks;
#[cfg(feature = "metrics")]
pub(crate) mod facade;
#[cfg(feature = "mongodb")]
pub(crate) mod mongo;
pub(crate) mod probe;
pub(crate) mod requests;
pub(crate) mod runtime;
pub(crate) mod system;

use crate::model::instruments::{self as i, Instrument};
use crate::part::Part;

/// The settings of every source but the request store (which the builder
/// makes, for the layer), in the order their sources are read.
pub(crate) fn parts() -> Vec<Box<dyn Part>> {
    vec![
        Box::new(system::SystemSwitch::default()),
        #[cfg(feature = "mongodb")]
        Box::new(mongo::MongoSettings::default()),
        Box::new(runtime::RuntimeChoice::default()),
        Box::new(checks::CheckSettings::default()),
        #[cfg(feature = "metrics")]
        Box::new(facade::FacadeSettings::default()),
    ]
}

/// Every instrument serverwatch defines in this build: the request and
/// system ones, then those the parts bring.
pub(crate) fn instruments() -> impl Iterator<Item = &'static Instrument> {
    let parts = parts();
    let brought: Vec<&'static Instrument> = parts
        .iter()
        .flat_map(|p| p.instruments())
        .copied()
        .collect();
    i::ALL.iter().copied().chain(brought)
}

/// The name of every label serverwatch's own series carry on `/metrics`.
pub(crate) fn label_names() -> impl Iterator<Item = &'static str> {
    let labels = [
        i::LABELS,
        checks::instruments::LABELS,
        #[cfg(feature = "mongodb")]
        mongo::instruments::LABELS,
    ];
    labels
        .into_iter()
        .flatten()
        .filter_map(|attribute| attribute.prometheus)
}

/// The instrument called `name`, by its OpenTelemetry name or its family
/// name on `/metrics`.
pub(crate) fn instrument(name: &str) -> Option<&'static Instrument> {
    instruments().find(|i| i.otel_name == name || i.prometheus_family() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the table of every instrument is kept for the tests that
    /// check the shipped configuration files against it.
    const TABLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/instruments.tsv"
    );

    fn definitions(source: &str) -> usize {
        source
            .lines()
            .filter(|l| {
                l.starts_with("pub(crate) const ") && l.ends_with(": Instrument = Instrument {")
            })
            .count()
    }

    /// `tests/fixtures/instruments.tsv` lists every instrument: OTel name,
    /// OTel unit, kind, and the family name on `/metrics`. Rewrite it with
    /// `SERVERWATCH_WRITE_TABLE=1 cargo test --all-features instrument_table`.
    #[cfg(feature = "mongodb")]
    #[test]
    fn the_instrument_table_is_current() {
        for (source, all) in [
            (include_str!("../model/instruments/mod.rs"), i::ALL),
            (
                include_str!("mongo/instruments.rs"),
                mongo::instruments::ALL,
            ),
            (
                include_str!("../model/instruments/runtime.rs"),
                i::runtime::ALL,
            ),
            (
                include_str!("checks/instruments.rs"),
                checks::instruments::ALL,
            ),
        ] {
            assert_eq!(definitions(source), all.len());
        }
        let mut table = String::from("otel_name\totel_unit\tkind\tprometheus_family\n");
        for i in instruments() {
            table.push_str(&format!(
                "{}\t{}\t{:?}\t{}\n",
                i.otel_name,
                i.unit.otel(),
                i.kind,
                i.prometheus_family()
            ));
        }
        if std::env::var_os("SERVERWATCH_WRITE_TABLE").is_some() {
            std::fs::write(TABLE, &table).unwrap();
        }
        let written = std::fs::read_to_string(TABLE).unwrap_or_default();
        assert!(
            written == table,
            "{TABLE} is out of date: rerun with SERVERWATCH_WRITE_TABLE=1"
        );
    }
}
