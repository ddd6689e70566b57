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
//! more slowly than they come, or not at all, as with a pipe whose reader has stopped. New
//! lines are then dropped and counted, and the log thread reports the count once stderr takes a
//! write again. Its report is added even to a full buffer, so it is never dropped itself. A
//! stalled log reader costs log lines, not requests.

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

/// The maximum number of bytes one write call hands the destination, unless one line is longer.
/// A pipe takes a write of at most `PIPE_BUF` bytes (4,096 on Linux) whole or not at all, so
/// when a stalled reader keeps the process from writing everything before it exits, no line is
/// cut.
const CHUNK: usize = 4096;

thread_local! {
    /// Whether this thread is the log thread, whose own lines (the reports of dropped lines)
    /// are buffered even past [`LIMIT`].
    static IS_LOG_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

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
    IS_LOG_THREAD.set(true);
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
            // After shutdown began, a line logged by another thread writes the buffer out
            // itself, so drops counted before may not have been reported yet.
            let dropped = std::mem::take(&mut state.dropped);
            drop(state);
            if dropped > 0 {
                report(dropped);
            }
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

/// Writes `bytes` in full and empties it, in chunks of whole lines of at most [`CHUNK`] bytes.
/// A non-blocking destination that is full is retried every millisecond. After any other error
/// the rest of the bytes is dropped, because writing them again from the start would repeat the
/// part already written. When that leaves a line cut short, the next write starts on a new
/// line. A log that cannot be written has nowhere to report it.
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
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let chunk = &rest[..chunk_end(rest)];
        let written = write_retrying(&mut destination.writer, chunk);
        if written < chunk.len() {
            if written > 0 && chunk[written - 1] != b'\n' {
                destination.torn = true;
            }
            break;
        }
        rest = &rest[chunk.len()..];
    }
    let _ = destination.writer.flush();
    bytes.clear();
}

/// Returns the length of the first chunk of `bytes`: the whole lines that fit in [`CHUNK`]
/// bytes, or the first line alone when it is longer.
fn chunk_end(bytes: &[u8]) -> usize {
    if bytes.len() <= CHUNK {
        return bytes.len();
    }
    match bytes[..CHUNK].iter().rposition(|&byte| byte == b'\n') {
        Some(newline) => newline + 1,
        None => bytes[CHUNK..]
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(bytes.len(), |newline| CHUNK + newline + 1),
    }
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
        if before + bytes.len() > LIMIT && !IS_LOG_THREAD.get() {
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

    /// Write permits for [`Metered`]: a count, or `None` once the test opened it for good.
    #[derive(Clone, Default)]
    struct Permits(Arc<(Mutex<Option<usize>>, Condvar)>);

    impl Permits {
        fn closed() -> Permits {
            let permits = Permits::default();
            *lock(&permits.0.0) = Some(0);
            permits
        }

        fn grant(&self, count: usize) {
            let (left, granted) = &*self.0;
            let mut left = lock(left);
            *left = left.map(|left| left + count);
            granted.notify_all();
        }

        fn open(&self) {
            let (left, granted) = &*self.0;
            *lock(left) = None;
            granted.notify_all();
        }
    }

    /// A destination whose writes each wait for a permit, as a pipe whose reader is stopped
    /// for a while.
    struct Metered {
        captured: Captured,
        permits: Permits,
    }

    impl Write for Metered {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (left, granted) = &*self.permits.0;
            let mut left = lock(left);
            loop {
                match *left {
                    None => break,
                    Some(count) if count > 0 => {
                        *left = Some(count - 1);
                        break;
                    }
                    Some(_) => left = granted.wait(left).unwrap_or_else(PoisonError::into_inner),
                }
            }
            drop(left);
            self.captured.write(bytes)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Logs `count` numbered lines of 1 KiB, starting at `first`, on another thread, so
    /// that logging which waits for the destination fails the test instead of hanging it.
    fn log_numbered<W: Write + Send + 'static>(
        writer: &GatheredWriter<W>,
        first: usize,
        count: usize,
    ) {
        let (finished, logged) = mpsc::channel();
        let logger = writer.clone();
        std::thread::spawn(move || {
            for number in first..first + count {
                let line = format!("{number:06}{}\n", "x".repeat(1017));
                logger
                    .make_writer()
                    .write_all(line.as_bytes())
                    .expect("append");
            }
            let _ = finished.send(());
        });
        logged
            .recv_timeout(Duration::from_secs(10))
            .expect("logging finished while the destination took nothing");
    }

    /// Waits until the log thread has taken the buffered lines and the dropped count.
    fn wait_until_taken<W>(writer: &GatheredWriter<W>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let state = lock(&writer.shared.state);
            if state.lines.is_empty() && state.dropped == 0 {
                return;
            }
            drop(state);
            assert!(
                std::time::Instant::now() < deadline,
                "the log thread took nothing"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn full_buffer_drops_and_counts_lines() {
        let output = Captured::default();
        let permits = Permits::closed();
        let metered = Metered {
            captured: output.clone(),
            permits: permits.clone(),
        };
        let reports = Arc::new(Mutex::new(Vec::new()));
        let report = {
            let reports = reports.clone();
            move |dropped| lock(&reports).push(dropped)
        };
        let (writer, guard) = gathered(metered, report).expect("log thread starts");
        let lines = 3 * LIMIT / 1024;
        // The log thread takes the first line and waits for the destination, so that every
        // later line finds it busy.
        log_numbered(&writer, 0, 1);
        wait_until_taken(&writer);
        log_numbered(&writer, 1, lines - 1);
        assert!(lock(&writer.shared.state).lines.len() <= LIMIT);
        permits.open();
        drop(guard);

        let numbers: Vec<usize> = text(&output)
            .lines()
            .map(|line| line[..6].parse().expect("a whole line"))
            .collect();
        assert_eq!(numbers, (0..numbers.len()).collect::<Vec<_>>());
        assert!(numbers.len() >= LIMIT / 1024, "a full buffer was written");
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

    #[test]
    fn report_added_to_full_buffer() {
        let output = Captured::default();
        let permits = Permits::closed();
        let metered = Metered {
            captured: output.clone(),
            permits: permits.clone(),
        };
        // The report logs through the writer itself, as `serve`'s report does through tracing.
        let logged_through: Arc<std::sync::OnceLock<GatheredWriter<Metered>>> = Arc::default();
        let report = {
            let logged_through = logged_through.clone();
            move |dropped| {
                if let Some(writer) = logged_through.get() {
                    let line = format!("dropped {dropped}\n");
                    let _ = writer.make_writer().write_all(line.as_bytes());
                }
            }
        };
        let (writer, guard) = gathered(metered, report).expect("log thread starts");
        let _ = logged_through.set(writer.clone());
        let lines = 2 * LIMIT / 1024;

        // The first batch fills the buffer while the destination takes nothing, and the log
        // thread takes it with its dropped count. The second batch fills the buffer again while
        // that write waits, so the first report finds the buffer full.
        log_numbered(&writer, 0, 1);
        wait_until_taken(&writer);
        log_numbered(&writer, 1, lines);
        permits.grant(1);
        wait_until_taken(&writer);
        log_numbered(&writer, 1 + lines, lines);
        permits.open();
        // Both reports come before shutdown, which would write a report past the limit anyway.
        let reports = |written: &str| -> Vec<usize> {
            written
                .lines()
                .filter_map(|line| line.strip_prefix("dropped "))
                .map(|count| count.parse().expect("a count"))
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while reports(&text(&output)).len() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(guard);

        let written = text(&output);
        let counts = reports(&written);
        let numbered = written
            .lines()
            .filter(|line| !line.starts_with("dropped "))
            .count();
        assert_eq!(counts.len(), 2, "one report per batch: {counts:?}");
        assert_eq!(counts.iter().sum::<usize>(), 1 + 2 * lines - numbered);
    }

    #[test]
    fn chunks_end_at_line_ends() {
        let short = "s".repeat(99) + "\n";
        let many = short.repeat(100);
        assert_eq!(chunk_end(many.as_bytes()), 4000);
        assert_eq!(chunk_end(&many.as_bytes()[..300]), 300);
        let long = "l".repeat(9_999) + "\n" + &short;
        assert_eq!(chunk_end(long.as_bytes()), 10_000);
        let unterminated = "u".repeat(5_000);
        assert_eq!(chunk_end(unterminated.as_bytes()), 5_000);
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
