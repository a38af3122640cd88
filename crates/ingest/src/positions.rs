//! Per-partition read positions that refuse silent gaps. A consumer positioned at offset `n`
//! must next see `n`; a broker that answers with later records (seen with tansu when the
//! requested offset lies inside a record batch) would otherwise make the consumer store
//! offsets past records it never read. On such a jump the partition is re-read from its start
//! (a record-batch boundary every broker serves correctly), skipping what is stored, until the
//! records arrive in order; a gap that persists while reading continuously from before it is
//! real (transaction markers, compaction) and is accepted.
//!
//! A jump can also hide at the tail: asked for an offset inside the last record batch, the
//! broker has no later records to answer with, so the partition looks caught up. `stalled`
//! finds such partitions so the consumer can rewind them too: records left (end offset past
//! the position) yet nothing delivered for a while; or a resumed position that the broker's end
//! offset cannot vouch for (tansu 0.6 reports the start of the last record batch as the end),
//! checked by one rewind before it is trusted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// What to do with one consumed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Ingest it.
    Accept,
    /// Already stored (redelivery): drop it.
    Skip,
    /// Records before it are missing: drop it; rewind the partition to `Some(offset)` (or keep
    /// waiting for an earlier rewind to take effect when `None`).
    Gap(Option<i64>),
}

#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// Next offset each partition must deliver.
    expected: BTreeMap<i32, i64>,
    /// Partitions currently delivering records from before `expected` (continuous reading).
    before: HashSet<i32>,
    /// Records dropped since the last rewind of a partition.
    dropped: HashMap<i32, u64>,
    /// When each partition last delivered a record (or was last rewound).
    seen: HashMap<i32, Instant>,
    /// Partitions whose position is known good: they delivered the expected offset, or were
    /// rewound to check it.
    confirmed: HashSet<i32>,
}

/// Records dropped after a rewind before the rewind is asked for again.
const PATIENCE: u64 = 20_000;

impl Positions {
    pub(crate) fn new(stored: &BTreeMap<i32, i64>) -> Positions {
        Positions {
            expected: stored.clone(),
            ..Positions::default()
        }
    }

    pub(crate) fn judge(&mut self, partition: i32, offset: i64) -> Verdict {
        let Some(expected) = self.expected.get(&partition).copied() else {
            // Nothing stored yet: the first record read is where the partition starts.
            self.expected.insert(partition, offset + 1);
            return Verdict::Accept;
        };
        if offset < expected {
            self.before.insert(partition);
            self.dropped.remove(&partition);
            return Verdict::Skip;
        }
        if offset == expected || self.before.contains(&partition) {
            self.confirmed.insert(partition);
            self.expected.insert(partition, offset + 1);
            self.before.remove(&partition);
            self.dropped.remove(&partition);
            return Verdict::Accept;
        }
        let dropped = self.dropped.entry(partition).or_insert(0);
        *dropped += 1;
        if *dropped > 1 && *dropped <= PATIENCE {
            return Verdict::Gap(None);
        }
        *dropped = 1;
        Verdict::Gap(Some(0))
    }
}

impl Positions {
    /// The next offset `partition` must deliver, if known.
    pub(crate) fn expected(&self, partition: i32) -> Option<i64> {
        self.expected.get(&partition).copied()
    }

    /// Notes that `partition` delivered records at `at`.
    pub(crate) fn delivered(&mut self, partition: i32, at: Instant) {
        self.seen.insert(partition, at);
    }

    /// Partitions that delivered nothing for `quiet` although their end offset (`ends`) lies
    /// past the next offset they must deliver, or lies before it while the position is not yet
    /// confirmed: the broker may not be serving their remaining records. Each one returned
    /// gets another `quiet` before it can be returned again.
    pub(crate) fn stalled(
        &mut self,
        ends: &BTreeMap<i32, i64>,
        now: Instant,
        quiet: Duration,
    ) -> Vec<i32> {
        let mut out = Vec::new();
        for (p, end) in ends {
            let Some(expected) = self.expected.get(p) else {
                continue;
            };
            let doubtful = end < expected && !self.confirmed.contains(p);
            if end == expected || (end < expected && !doubtful) {
                self.seen.remove(p);
                continue;
            }
            let since = *self.seen.entry(*p).or_insert(now);
            if now.duration_since(since) >= quiet {
                self.seen.insert(*p, now);
                self.dropped.remove(p);
                self.confirmed.insert(*p);
                out.push(*p);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_rewind_deeper_until_records_arrive_in_order() {
        let mut p = Positions::new(&BTreeMap::from([(0, 2000)]));
        // The broker answers a fetch at 2000 with 2370…: rewind.
        assert_eq!(p.judge(0, 2370), Verdict::Gap(Some(0)));
        assert_eq!(p.judge(0, 2371), Verdict::Gap(None));
        // After the rewind: older records are skipped, then 2000 onwards is accepted.
        assert_eq!(p.judge(0, 1900), Verdict::Skip);
        assert_eq!(p.judge(0, 1999), Verdict::Skip);
        assert_eq!(p.judge(0, 2000), Verdict::Accept);
        assert_eq!(p.judge(0, 2001), Verdict::Accept);
        // A new partition starts where it is first read.
        assert_eq!(p.judge(3, 17), Verdict::Accept);
        assert_eq!(p.judge(3, 18), Verdict::Accept);
    }

    #[test]
    fn a_gap_seen_while_reading_continuously_is_real() {
        let mut p = Positions::new(&BTreeMap::from([(1, 100)]));
        assert_eq!(p.judge(1, 98), Verdict::Skip);
        assert_eq!(p.judge(1, 99), Verdict::Skip);
        // 100 and 101 do not exist (e.g. transaction markers): accepted, not rewound.
        assert_eq!(p.judge(1, 102), Verdict::Accept);
        assert_eq!(p.judge(1, 103), Verdict::Accept);
        // A later jump again asks for a rewind.
        assert_eq!(p.judge(1, 200), Verdict::Gap(Some(0)));
        assert_eq!(p.judge(1, 201), Verdict::Gap(None));
    }

    #[test]
    fn a_partition_with_records_left_but_silent_is_stalled() {
        let t0 = Instant::now();
        let quiet = Duration::from_secs(10);
        let mut p = Positions::new(&BTreeMap::from([(0, 500), (1, 300)]));
        let ends = BTreeMap::from([(0, 500), (1, 320), (2, 40)]);
        // Partition 0 is caught up; 2 has no known position; 1 has 20 records left. The first
        // look only starts the clock.
        assert_eq!(p.stalled(&ends, t0, quiet), Vec::<i32>::new());
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(9), quiet),
            Vec::<i32>::new()
        );
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(10), quiet),
            vec![1]
        );
        // Not again before another quiet period.
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(15), quiet),
            Vec::<i32>::new()
        );
        // Deliveries keep a lagging partition from counting as stalled.
        p.delivered(1, t0 + Duration::from_secs(19));
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(25), quiet),
            Vec::<i32>::new()
        );
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(29), quiet),
            vec![1]
        );
        // Once the records arrive in order, it is caught up.
        for o in 300..320 {
            assert_eq!(p.judge(1, o), Verdict::Accept);
        }
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(60), quiet),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn an_end_offset_behind_a_resumed_position_is_checked_once() {
        let t0 = Instant::now();
        let quiet = Duration::from_secs(10);
        let mut p = Positions::new(&BTreeMap::from([(4, 1583), (5, 700)]));
        // The broker says 1352 (the start of its last batch) for a partition resumed at 1583;
        // partition 5 delivers its expected offset, which confirms it.
        let ends = BTreeMap::from([(4, 1352), (5, 650)]);
        assert_eq!(p.judge(5, 700), Verdict::Accept);
        assert_eq!(p.stalled(&ends, t0, quiet), Vec::<i32>::new());
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(10), quiet),
            vec![4]
        );
        // Rewound once; afterwards the position is trusted.
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(30), quiet),
            Vec::<i32>::new()
        );
        assert_eq!(
            p.stalled(&ends, t0 + Duration::from_secs(60), quiet),
            Vec::<i32>::new()
        );
    }
}
