//! The write-ahead log when the disk fills up mid-append (simulated with RLIMIT_FSIZE, which is
//! process-wide: this test has its own binary). The failed append must leave no hole, and the
//! next acknowledged append must be readable now and after a restart.

use faultline::domain::StreamKey;
use faultline::wal::{SyncPolicy, WalBatch, WalOptions, WalReader, WalWriter};

fn opts(dir: &std::path::Path) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        segment_bytes: 1 << 20,
        sync: SyncPolicy::Never,
        max_pending_lines: 1_000_000,
    }
}

fn batch(line: &str) -> WalBatch {
    WalBatch {
        stream: StreamKey {
            host: "h".into(),
            ..Default::default()
        },
        lines: vec![line.to_string()],
    }
}

fn set_file_size_limit(limit: u64) {
    let r = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer to an initialised struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &r) }, 0);
}

fn all_lines(w: &WalWriter) -> Vec<String> {
    let mut r = WalReader::new(w.shared());
    r.seek(0);
    let mut lines = Vec::new();
    loop {
        let entries = r.read(100).expect("the WAL reads cleanly");
        if entries.is_empty() {
            return lines;
        }
        lines.extend(entries.into_iter().flat_map(|e| e.lines));
    }
}

#[test]
fn a_failed_partial_append_leaves_no_hole() {
    // SAFETY: ignoring SIGXFSZ makes an over-limit write fail with EFBIG instead of killing us.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = tempfile::tempdir().unwrap();
    let (mut w, _) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
    w.append(&[batch("A")], 1).unwrap();
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    let a_len = std::fs::metadata(&seg).unwrap().len();

    // The disk "fills up" 10 bytes further: this append is partially written, then fails.
    set_file_size_limit(a_len + 10);
    assert!(
        w.append(&[batch("B-rejected-because-disk-full")], 2)
            .is_err()
    );
    set_file_size_limit(libc::RLIM_INFINITY);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        a_len,
        "debris cut off"
    );

    // Space is back: the next append is acknowledged and must be readable.
    let (first, end) = w.append(&[batch("C-acknowledged")], 3).unwrap();
    assert_eq!(
        (first, end),
        (1, 2),
        "the failed append consumed no sequence number"
    );
    assert_eq!(all_lines(&w), vec!["A", "C-acknowledged"]);

    drop(w);
    let (w, report) = WalWriter::open(opts(dir.path()), 0, 0).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(all_lines(&w), vec!["A", "C-acknowledged"]);
}
