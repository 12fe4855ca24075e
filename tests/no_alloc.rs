//! "Matching must not allocate per line on the no-match path": count allocations while the
//! engine looks at records that hit nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use faultline::domain::{Layout as LogLayout, Level, LogRecord};
use faultline::rules::{Correlator, RuleSource, load};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn record(message: &str, level: Level) -> LogRecord {
    LogRecord {
        id: 1,
        last_seq: 1,
        received_ms: 0,
        event_ms: 0,
        cluster: "default".into(),
        host: "dn1".into(),
        service: "datanode".into(),
        source_file: String::new(),
        level,
        logger: "org.apache.hadoop.hdfs.server.datanode.DataNode".into(),
        thread: String::new(),
        message: message.into(),
        layout: LogLayout::Log4j,
        line_count: 1,
    }
}

#[test]
fn the_no_match_path_does_not_allocate() {
    let set = Arc::new(load(&RuleSource::Embedded).unwrap());
    let mut correlator = Correlator::new(set);
    let mut out = Vec::with_capacity(16);
    let benign = [
        record(
            "Receiving BP-1:blk_1073741825_1001 src: /10.0.0.5:50010 dest: /10.0.0.6:50010",
            Level::Info,
        ),
        record(
            "PacketResponder: BP-1:blk_1073741825_1001, type=LAST_IN_PIPELINE terminating",
            Level::Info,
        ),
        record(
            "Slow BlockReceiver write data to disk cost:312ms (threshold=300ms)",
            Level::Warn,
        ),
        record(
            "Scheduling a check for [DISK]file:/data/1/dfs/dn",
            Level::Info,
        ),
    ];
    // Warm up (first-use buffers are sized once).
    for r in &benign {
        correlator.process(r, &mut out);
    }
    assert!(out.is_empty(), "{out:#?}");
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..1000 {
        for r in &benign {
            correlator.process(r, &mut out);
        }
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(out.is_empty());
    assert_eq!(
        ALLOCS.load(Ordering::SeqCst),
        0,
        "allocations on the no-match path"
    );
}
