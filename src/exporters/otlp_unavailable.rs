//! What stands for the OTLP push in a build without its `otlp` feature: a
//! part that says once, at `build()`, that the environment asks for an
//! export this build cannot make, so that the variables are not ignored
//! without a word.

use crate::error::BuildError;
use crate::part::{Assembly, Env, Part, part_boilerplate};

#[derive(Debug, Clone, Default)]
pub(crate) struct OtlpUnavailable;

impl Part for OtlpUnavailable {
    part_boilerplate!();

    fn read_env(&mut self, env: Env<'_>) -> Result<Option<String>, BuildError> {
        warn(env);
        Ok(None)
    }

    fn build(self: Box<Self>, _: &mut Assembly) -> Result<(), BuildError> {
        Ok(())
    }
}

fn warn(env: Env<'_>) {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    let other_exporter = env("OTEL_METRICS_EXPORTER")
        .filter(|v| !v.trim().is_empty())
        .is_some_and(|v| !v.split(',').any(|e| e.trim() == "otlp"));
    let endpoints: Vec<&str> = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ]
    .into_iter()
    .filter(|name| set(name))
    .collect();
    if !endpoints.is_empty() && !other_exporter {
        tracing::warn!(
            variables = %endpoints.join(", "),
            "serverwatch: OTLP export is requested by the environment but serverwatch was built \
             without its `otlp` feature, so nothing is exported and the OTEL_EXPORTER_OTLP_* \
             variables are not read; enable the feature (features = [\"otlp\"]) to export"
        );
    }
}
