//! CPU time of the server processes under test, read from `/proc/<pid>/stat` and per thread from
//! `/proc/<pid>/task/*`, so a run can report CPU per log entry and per decision and where it went.

use std::collections::BTreeMap;

/// Clock ticks per second as `/proc` counts them (`sysconf(_SC_CLK_TCK)` is 100 on every Linux in practice).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks (user + system) of one process and of each of its threads by name, at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSample {
    /// Total ticks of the process, or `None` if it could not be read.
    pub(crate) total: Option<u64>,
    /// Ticks per thread name (threads of one name summed: `tokio-runtime-w`, `sled-io-...`).
    pub(crate) threads: BTreeMap<String, u64>,
}

impl CpuSample {
    /// Reads the CPU ticks of `pid` now (empty off Linux, or if the process is gone).
    pub(crate) fn read(pid: u32) -> CpuSample {
        let total = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| ticks(&s));
        let mut threads = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let path = task.path();
                let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_owned();
                if let Some(t) = std::fs::read_to_string(path.join("stat")).ok().and_then(|s| ticks(&s)) {
                    *threads.entry(name).or_insert(0) += t;
                }
            }
        }
        CpuSample { total, threads }
    }

    /// CPU seconds spent between `self` and `later`, in all and per thread name.
    pub(crate) fn spent_until(&self, later: &CpuSample) -> Option<CpuSpent> {
        let total = later.total?.saturating_sub(self.total?) as f64 / TICKS_PER_SECOND;
        let mut threads: Vec<(String, f64)> = later
            .threads
            .iter()
            .map(|(name, t)| {
                let before = self.threads.get(name).copied().unwrap_or(0);
                (name.clone(), t.saturating_sub(before) as f64 / TICKS_PER_SECOND)
            })
            .filter(|(_, seconds)| *seconds > 0.0)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(CpuSpent { total, threads })
    }
}

/// CPU seconds one process spent over an interval.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuSpent {
    /// All threads together.
    pub(crate) total: f64,
    /// Per thread name, busiest first.
    pub(crate) threads: Vec<(String, f64)>,
}

/// utime + stime from a `/proc/.../stat` line: fields 14 and 15, counted after the `)` that ends the name.
fn ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "4242 (tokio runtime) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(ticks(stat), Some(300));
        assert_eq!(ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_threads() {
        let sample = CpuSample::read(std::process::id());
        if cfg!(target_os = "linux") {
            assert!(sample.total.is_some() && !sample.threads.is_empty());
        }
    }
}
