//! [`IoMode`]: where blocking disk work runs, on real threads or inline under deterministic simulation, and
//! [`background`] for heavy work that must not compete with deciding.

/// Where storage runs its blocking IO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum IoMode {
    /// On tokio's blocking threads (and a flusher thread): the async workers never wait on the disk.
    #[default]
    Background,
    /// On the calling task: for deterministic simulation, where no IO may finish on another thread while
    /// simulated time runs (stack-notes §6).
    Inline,
}

/// Runs blocking IO (sled flushes, snapshot encoding) as `mode` says.
///
/// # Errors
///
/// If the blocking task panicked or was cancelled.
pub(crate) async fn blocking<T, F>(mode: IoMode, f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match mode {
        IoMode::Background => tokio::task::spawn_blocking(f).await,
        IoMode::Inline => Ok(f()),
    }
}

/// How far below deciding a [`background`] thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Linux's `SCHED_IDLE`: a thread of any other policy that wakes preempts it at once, so it runs on CPU time
    /// that nothing else wants. Under EEVDF (Linux 6.6+) a nice +10 thread keeps its core until its slice ends
    /// while woken request threads wait: snapshots of a million keys at nice +10 cost a third of the checks/s and
    /// quadrupled their p999 on this 2-core box; at `SCHED_IDLE` the checks/s stayed within 2% (the snapshot took
    /// 15 s instead of 6 under that load).
    Idle,
    /// Nice +10: about a tenth of a core's share against normal threads when the cores are contended. For when
    /// idle-priority work has been starved (a node with no spare CPU must still snapshot).
    Low,
}

/// Runs heavy work that nothing waits on urgently (encoding and writing a snapshot) on a thread of its own at
/// `priority`, so that Raft, applying and answering checks win the cores while it runs. Inline under
/// deterministic simulation, as [`blocking`]. Outside Linux the thread runs at normal priority.
///
/// # Errors
///
/// If the thread cannot be started or panicked.
pub(crate) async fn background<T, F>(mode: IoMode, priority: Priority, f: F) -> std::io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if mode == IoMode::Inline {
        return Ok(f());
    }
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("quorate-background".to_owned()).spawn(move || {
        lower_priority(priority);
        let _ = done.send(f());
    })?;
    result.await.map_err(|_| std::io::Error::other("the background thread panicked"))
}

/// Lowers the calling thread's CPU priority (Linux scheduling policies and nice values are per thread); best
/// effort. A thread cannot raise it again without privileges, so each [`background`] call has a thread of its own.
#[cfg_attr(target_os = "linux", allow(unsafe_code))]
fn lower_priority(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        let lowered = match priority {
            Priority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: `param` is a valid `sched_param` that outlives the call, and pid 0 names the calling
                // thread; the call reads nothing else and cannot affect memory.
                match unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } {
                    0 => Ok(()),
                    // A sandbox that refuses the policy (seccomp): nice +10 is the next best thing.
                    _ => rustix::process::nice(10).map(|_| ()).map_err(std::io::Error::from),
                }
            }
            Priority::Low => rustix::process::nice(10).map(|_| ()).map_err(std::io::Error::from),
        };
        if let Err(error) = lowered {
            tracing::debug!(%error, ?priority, "could not lower the background thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    #[allow(unsafe_code)]
    async fn background_threads_run_below_deciding() -> std::io::Result<()> {
        let policy_and_nice = || {
            // SAFETY: sched_getscheduler reads the calling thread's policy; pid 0 names it.
            (unsafe { libc::sched_getscheduler(0) }, rustix::process::getpriority_process(None))
        };
        // Relative to the caller: a test run under `nice` starts above 0, and nice values stop at 19.
        let niced = (rustix::process::getpriority_process(None)? + 10).min(19);
        let (idle_policy, idle_nice) = background(IoMode::Background, Priority::Idle, policy_and_nice).await?;
        let (low_policy, low_nice) = background(IoMode::Background, Priority::Low, policy_and_nice).await?;
        // A sandbox may refuse SCHED_IDLE; then the thread must at least be niced.
        assert!(
            idle_policy == libc::SCHED_IDLE || (idle_policy == libc::SCHED_OTHER && idle_nice? == niced),
            "policy {idle_policy}"
        );
        assert_eq!((low_policy, low_nice?), (libc::SCHED_OTHER, niced));
        // The caller's own thread is untouched.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
        Ok(())
    }
}
