//! Process and system figures as metric families.

use std::borrow::Cow;

use super::SystemSnapshot;
use crate::model::family::{Family, Point, PointValue, Value, process_start};
use crate::model::instruments::{self as i, Attribute};

impl SystemSnapshot {
    pub(crate) fn families(&self) -> Vec<Family> {
        let s = self;
        let p = &s.process;
        let one = |instrument, value: f64| Family::new(instrument).number(Vec::new(), value);
        let text = |s: &'static str| Value::Str(Cow::Borrowed(s));
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
                .number(vec![(&i::CPU_MODE, text("user"))], user)
                .number(vec![(&i::CPU_MODE, text("system"))], system),
            None => one(&i::PROCESS_CPU_TIME, p.cpu_seconds),
        });

        let states = |attribute: &'static Attribute, values: &[(&'static str, u64)]| {
            values
                .iter()
                .map(|(state, value)| Point {
                    attributes: vec![(attribute, text(state))],
                    value: PointValue::Number(*value as f64),
                    start: process_start(),
                })
                .collect()
        };
        let m = &s.memory;
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
}
