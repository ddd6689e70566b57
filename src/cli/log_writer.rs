//! The log writer of `sesame serve`: request threads append lines to a buffer in memory, and
//! a thread of its own writes the buffer out, usually at most once every [`GATHER`]. Lines
//! logged after shutdown began are written by the thread that logs them.
//!
//! Waking a thread for every line costs two context switches. Here the log thread writes what
//! it finds as soon as it wakes, then sleeps for [`GATHER`] while the next lines gather, so a
//! busy server wakes it about a hundred times a second whatever its request rate, and a line
//! logged after a quiet spell is written at once. Measured
//! with ES256 client credentials at full load (bench/RESULTS.md), the token rate rose 3-5%
//! over a queue whose thread woke for each line.
//!
//! No request thread waits for stderr before shutdown. The buffer fills when stderr takes lines
//! more slowly than they come, or not at all, as a pipe whose reader has stopped. New lines are
//! then dropped and counted, and the log thread reports the count once stderr takes a write
//! again. A stalled log reader costs log lines, not requests.

use std::io::{ErrorKind, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the log thread sleeps after each write while the next lines gather.
const GATHER: Duration = Duration::from_millis(10);

/// The buffer's maximum size in bytes. A line that would pass it is dropped and counted.
const LIMIT: usize = 256 * 1024;

/// Buffered bytes at which the log thread wakes before its [`GATHER`] sleep ends, so that a
/// burst fills the buffer only when stderr cannot keep up.
const EARLY_WAKE: usize = LIMIT / 4;

/// Receives the number of lines dropped since the last report.
type DropReport = Box<dyn Fn(u64) + Send>;

/// The writer shared by request threads: a [`MakeWriter`] for tracing-subscriber.
pub struct GatheredWriter<W> {
    shared: Arc<Shared<W>>,
}

// Derived, `Clone` would require `W: Clone`, but clones share the one destination.
impl<W> Clone for GatheredWriter<W> {
    fn clone(&self) -> Self {
        GatheredWriter {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<W> {
    state: Mutex<State>,
    /// Signalled when a line arrives in an empty buffer, when the buffer reaches
    /// [`EARLY_WAKE`], and when logging ends.
    arrived: Condvar,
    /// The destination. A thread writing to it takes this lock before it releases `state`,
    /// so lines reach it in the order they were appended.
    output: Mutex<Destination<W>>,
}

/// The writer that lines go to, and whether its last write stopped inside a line.
struct Destination<W> {
    writer: W,
    torn: bool,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    closed: bool,
    /// Lines dropped because the buffer was full, since the last report.
    dropped: u64,
}

/// Stops the log thread when dropped, after it has written every line appended before, or
/// after [`SHUTDOWN_WAIT`] when the destination does not take them, so that a stalled reader
/// of stderr cannot keep the process from exiting.
pub struct LogGuard<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the log thread ends.
    exited: mpsc::Receiver<()>,
}

/// How long dropping the guard waits for the log thread at most.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// Starts the log thread writing to `output`. Keep the guard until the program ends. After a
/// write that follows dropped lines, the log thread calls `report` with their number.
pub fn gathered<W: Write + Send + 'static>(
    output: W,
    report: impl Fn(u64) + Send + 'static,
) -> std::io::Result<(GatheredWriter<W>, LogGuard<W>)> {
    let report: DropReport = Box::new(report);
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        arrived: Condvar::new(),
        output: Mutex::new(Destination {
            writer: output,
            torn: false,
        }),
    });
    let (exiting, exited) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("sesame-log".into())
        .spawn({
            let shared = shared.clone();
            move || {
                write_lines(&shared, &report);
                drop(exiting);
            }
        })?;
    let writer = GatheredWriter {
        shared: shared.clone(),
    };
    Ok((
        writer,
        LogGuard {
            shared,
            thread: Some(thread),
            exited,
        },
    ))
}

/// Locks a mutex, taking the data of one poisoned by a panicking thread: a log line cut short
/// is better than no log at all.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_lines<W: Write>(shared: &Shared<W>, report: &DropReport) {
    let mut spare = Vec::new();
    loop {
        let mut state = lock(&shared.state);
        while state.lines.is_empty() && !state.closed {
            state = shared
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.lines.is_empty() {
            return;
        }
        std::mem::swap(&mut state.lines, &mut spare);
        let dropped = std::mem::take(&mut state.dropped);
        let mut output = lock(&shared.output);
        let closed = state.closed;
        drop(state);
        write_out(&mut output, &mut spare);
        drop(output);
        if dropped > 0 {
            report(dropped);
        }
        if !closed {
            let state = lock(&shared.state);
            let gathering = |state: &mut State| state.lines.len() < EARLY_WAKE && !state.closed;
            let _ = shared
                .arrived
                .wait_timeout_while(state, GATHER, gathering)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Writes `bytes` in full and empties it. A non-blocking destination that is full is retried
/// every millisecond. After any other error the rest of the bytes is dropped, because writing
/// them again from the start would repeat the part already written. When that leaves a line
/// cut short, the next write starts on a new line. A log that cannot be written has nowhere
/// to report it.
fn write_out<W: Write>(destination: &mut Destination<W>, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    if destination.torn {
        if write_retrying(&mut destination.writer, b"\n") == 1 {
            destination.torn = false;
        } else {
            bytes.clear();
            return;
        }
    }
    let written = write_retrying(&mut destination.writer, bytes);
    if written > 0 && written < bytes.len() && bytes[written - 1] != b'\n' {
        destination.torn = true;
    }
    let _ = destination.writer.flush();
    bytes.clear();
}

/// Writes as much of `bytes` as the writer takes, retrying interruptions and a full
/// non-blocking destination. Returns how many bytes were written.
fn write_retrying<W: Write>(writer: &mut W, bytes: &[u8]) -> usize {
    let mut written = 0;
    while written < bytes.len() {
        match writer.write(&bytes[written..]) {
            Ok(0) => break,
            Ok(count) => written += count,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => break,
        }
    }
    written
}

impl<W: Write + Send + 'static> Drop for LogGuard<W> {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.arrived.notify_one();
        // The sender is dropped only when the thread ends, so this returns at once then.
        let _ = self.exited.recv_timeout(SHUTDOWN_WAIT);
        if let Some(thread) = self.thread.take()
            && thread.is_finished()
        {
            let _ = thread.join();
        }
    }
}

/// One event's writer. tracing-subscriber formats an event in full and then writes it with
/// one call, so each line is appended whole.
pub struct Line<'a, W> {
    shared: &'a Shared<W>,
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for GatheredWriter<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
        }
    }
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = lock(&self.shared.state);
        // Once logging ended, this thread writes what is buffered and then its own line, so
        // lines stay in order.
        if state.closed {
            let mut output = lock(&self.shared.output);
            write_out(&mut output, &mut state.lines);
            write_out(&mut output, &mut bytes.to_vec());
            return Ok(bytes.len());
        }
        let before = state.lines.len();
        if before + bytes.len() > LIMIT {
            state.dropped += 1;
            return Ok(bytes.len());
        }
        state.lines.extend_from_slice(bytes);
        let after = state.lines.len();
        drop(state);
        if before == 0 || (before < EARLY_WAKE && after >= EARLY_WAKE) {
            self.shared.arrived.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination the test can read while the writer still owns it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(output: &Captured) -> String {
        String::from_utf8(lock(&output.0).clone()).expect("utf-8")
    }

    #[test]
    fn concurrent_lines_written_whole_in_order() {
        let output = Captured::default();
        let (writer, guard) = gathered(output.clone(), |_| {}).expect("log thread starts");
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let writer = &writer;
                scope.spawn(move || {
                    for line in 0..500 {
                        let mut line_writer = writer.make_writer();
                        let text = format!("thread {thread} line {line}\n");
                        line_writer.write_all(text.as_bytes()).expect("append");
                    }
                });
            }
        });
        drop(guard);
        let written = text(&output);
        assert_eq!(written.lines().count(), 2000, "{written}");
        for thread in 0..4 {
            let numbers: Vec<usize> = written
                .lines()
                .filter_map(|line| line.strip_prefix(&format!("thread {thread} line ")))
                .map(|number| number.parse().expect("a whole line"))
                .collect();
            assert_eq!(
                numbers,
                (0..500).collect::<Vec<_>>(),
                "each thread's lines in order"
            );
        }
    }

    #[test]
    fn lone_line_written_without_drop() {
        let output = Captured::default();
        let (writer, guard) = gathered(output.clone(), |_| {}).expect("log thread starts");
        writer.make_writer().write_all(b"alone\n").expect("append");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while text(&output).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(text(&output), "alone\n");
        drop(guard);
        writer
            .make_writer()
            .write_all(b"after the guard\n")
            .expect("write");
        assert_eq!(text(&output), "alone\nafter the guard\n");
    }

    /// A destination whose writes wait until the test opens it, as a pipe whose reader is
    /// stopped for a while.
    struct Gated {
        captured: Captured,
        open: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Write for Gated {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.open;
            let mut is_open = lock(open);
            while !*is_open {
                is_open = opened.wait(is_open).unwrap_or_else(PoisonError::into_inner);
            }
            drop(is_open);
            self.captured.write(bytes)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn full_buffer_drops_and_counts_lines() {
        let output = Captured::default();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let gated = Gated {
            captured: output.clone(),
            open: gate.clone(),
        };
        let reports = Arc::new(Mutex::new(Vec::new()));
        let report = {
            let reports = reports.clone();
            move |dropped| lock(&reports).push(dropped)
        };
        let (writer, guard) = gathered(gated, report).expect("log thread starts");
        let line = format!("{}\n", "x".repeat(999));
        let lines = 3 * LIMIT / line.len();
        // The lines are logged on another thread, so that logging which waits for the closed
        // destination fails the test instead of hanging it.
        let (finished, logged) = mpsc::channel();
        let logger = writer.clone();
        std::thread::spawn(move || {
            for number in 0..lines {
                let numbered = format!("{number:06}{}", &line[6..]);
                logger
                    .make_writer()
                    .write_all(numbered.as_bytes())
                    .expect("append");
                assert!(lock(&logger.shared.state).lines.len() <= LIMIT);
            }
            let _ = finished.send(());
        });
        logged
            .recv_timeout(Duration::from_secs(10))
            .expect("logging finished while the destination took nothing");
        let (open, opened) = &*gate;
        *lock(open) = true;
        opened.notify_all();
        drop(guard);

        let numbers: Vec<usize> = text(&output)
            .lines()
            .map(|line| line[..6].parse().expect("a whole line"))
            .collect();
        assert_eq!(numbers, (0..numbers.len()).collect::<Vec<_>>());
        assert!(numbers.len() >= LIMIT / 1000, "a full buffer was written");
        assert!(
            numbers.len() < lines,
            "lines past the full buffer were dropped"
        );
        let reported: u64 = lock(&reports).iter().sum();
        assert_eq!(
            usize::try_from(reported).expect("count"),
            lines - numbers.len()
        );
    }

    /// A non-blocking pipe that is often full: every other call fails with `WouldBlock`, and
    /// the others take at most 16 bytes.
    struct Choked {
        captured: Captured,
        calls: usize,
    }

    impl Write for Choked {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                return Err(ErrorKind::WouldBlock.into());
            }
            let count = bytes.len().min(16);
            self.captured.write(&bytes[..count])
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_lines_whole() {
        let output = Captured::default();
        let choked = Choked {
            captured: output.clone(),
            calls: 0,
        };
        let (writer, guard) = gathered(choked, |_| {}).expect("log thread starts");
        for number in 0..100 {
            let line = format!("line {number:03} of the choked test\n");
            writer
                .make_writer()
                .write_all(line.as_bytes())
                .expect("append");
        }
        drop(guard);
        let written = text(&output);
        let expected: String = (0..100)
            .map(|number| format!("line {number:03} of the choked test\n"))
            .collect();
        assert_eq!(written, expected);
    }

    /// A destination that fails for good after its first 10 bytes.
    struct Broken {
        captured: Captured,
    }

    impl Write for Broken {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let already = lock(&self.captured.0).len();
            if already >= 10 {
                return Err(ErrorKind::BrokenPipe.into());
            }
            let count = bytes.len().min(10 - already);
            self.captured.write(&bytes[..count])
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_write_repeats_nothing() {
        let output = Captured::default();
        let broken = Broken {
            captured: output.clone(),
        };
        let (writer, guard) = gathered(broken, |_| {}).expect("log thread starts");
        writer
            .make_writer()
            .write_all(b"0123456789abcdef\n")
            .expect("append");
        drop(guard);
        assert_eq!(text(&output), "0123456789");
    }

    /// A destination that takes 4 bytes, then fails once, then takes everything.
    struct Flaky {
        captured: Captured,
        calls: usize,
    }

    impl Write for Flaky {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.calls += 1;
            match self.calls {
                1 => self.captured.write(&bytes[..bytes.len().min(4)]),
                2 => Err(ErrorKind::BrokenPipe.into()),
                _ => self.captured.write(bytes),
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn cut_line_ends_before_next() {
        let output = Captured::default();
        let flaky = Flaky {
            captured: output.clone(),
            calls: 0,
        };
        let (writer, guard) = gathered(flaky, |_| {}).expect("log thread starts");
        writer
            .make_writer()
            .write_all(b"{\"a\":1}\n")
            .expect("append");
        while lock(&output.0).is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(GATHER * 2);
        writer
            .make_writer()
            .write_all(b"{\"b\":2}\n")
            .expect("append");
        drop(guard);
        assert_eq!(text(&output), "{\"a\"\n{\"b\":2}\n");
    }

    /// A destination whose writes never return, as a pipe whose reader is stopped.
    struct Stalled;

    impl Write for Stalled {
        fn write(&mut self, _bytes: &[u8]) -> std::io::Result<usize> {
            loop {
                std::thread::park();
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn stalled_destination_bounds_shutdown() {
        let (writer, guard) = gathered(Stalled, |_| {}).expect("log thread starts");
        writer
            .make_writer()
            .write_all(b"never written\n")
            .expect("append");
        let started = std::time::Instant::now();
        drop(guard);
        assert!(
            started.elapsed() < SHUTDOWN_WAIT * 5,
            "{:?}",
            started.elapsed()
        );
    }
}
