//! The fan-out's threads ahead of the rest of the process.
//!
//! A gateway both takes work in (reading sockets, storing posts, answering requests) and
//! delivers it (the hub's shard threads writing each message to its room's sockets). When the
//! cores are busy, a delivery that waits for a core behind new intake is late for every member
//! of its room, while intake that waits only slows its own sender. So the process gives every
//! thread but the fan-out's some more niceness: Linux keeps a nice value per thread, raising it
//! needs no privilege, and threads inherit it from the thread that starts them, so threads
//! started later (the runtime's blocking pool, database connections) come out lowered too.

use std::io;

/// The calling thread's kernel id, to keep it out of [`lower_other_threads`].
pub fn current_thread_id() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::gettid().as_raw_nonzero().get()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Gives every thread of this process but `keep` `levels` more niceness (at most 19), each
/// from its own current value; answers how many threads were lowered.
pub fn lower_other_threads(keep: &[i32], levels: u8) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process, Pid};

        let mut lowered = 0;
        for entry in std::fs::read_dir("/proc/self/task")? {
            let name = entry?.file_name();
            let Some(tid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Some(pid) = Pid::from_raw(tid).filter(|_| !keep.contains(&tid)) else {
                continue;
            };
            // A thread that ended since the listing is no longer ours to lower.
            let Ok(nice) = getpriority_process(Some(pid)) else {
                continue;
            };
            let target = (nice + i32::from(levels)).min(19);
            match setpriority_process(Some(pid), target) {
                Ok(()) => lowered += 1,
                Err(rustix::io::Errno::SRCH) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(lowered)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (keep, levels);
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of(tid: i32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // Field 19 (nice), counted after the command name's closing parenthesis.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn other_threads_are_lowered_and_the_kept_ones_are_not() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let kept = std::thread::spawn(move || {
            tid_tx.send(current_thread_id()).unwrap();
            let _ = stop_rx.recv();
        });
        let kept_tid = tid_rx.recv().unwrap();
        let me = current_thread_id();
        let (kept_before, mine_before) = (nice_of(kept_tid), nice_of(me));

        let lowered = lower_other_threads(&[kept_tid], 3).unwrap();
        assert!(lowered >= 1, "{lowered}");
        assert_eq!(nice_of(kept_tid), kept_before);
        assert_eq!(nice_of(me), (mine_before + 3).min(19));
        // A thread started by a lowered one starts lowered.
        let child = std::thread::spawn(move || nice_of(current_thread_id()));
        assert_eq!(child.join().unwrap(), (mine_before + 3).min(19));

        stop_tx.send(()).unwrap();
        kept.join().unwrap();
    }
}
