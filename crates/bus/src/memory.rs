//! The in-process bus: partitioned in-memory logs, consumer groups and offsets for roles that
//! share one process (the embedded, monolithic mode).

use crate::{partition_for, Error, Message, Record, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Records a partition may retain that some group has not committed before producers wait.
const DEFAULT_CAPACITY: usize = 20_000;

#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    capacity: usize,
    next_member: AtomicU64,
}

struct Topic {
    name: String,
    logs: Vec<Mutex<Log>>,
    groups: Mutex<HashMap<String, Group>>,
    data_ready: Notify,
    space_freed: Notify,
}

struct Log {
    /// Offset of `records[0]`.
    base: i64,
    records: VecDeque<Arc<Message>>,
}

impl Log {
    fn end(&self) -> i64 {
        self.base + self.records.len() as i64
    }
}

struct Group {
    members: Vec<u64>,
    generation: u64,
    committed: Vec<i64>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A bus whose partitions hold at most `capacity` records not yet committed by a group.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryBus {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                next_member: AtomicU64::new(1),
            }),
        }
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let mut topics = self.inner.topics.lock().expect("bus lock");
        topics.entry(name.to_string()).or_insert_with(|| {
            Arc::new(Topic {
                name: name.to_string(),
                logs: (0..partitions.max(1))
                    .map(|_| {
                        Mutex::new(Log {
                            base: 0,
                            records: VecDeque::new(),
                        })
                    })
                    .collect(),
                groups: Mutex::new(HashMap::new()),
                data_ready: Notify::new(),
                space_freed: Notify::new(),
            })
        });
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner
            .topics
            .lock()
            .expect("bus lock")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))
    }

    /// Appends records; waits while a partition is full (backpressure).
    pub async fn send(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        self.append(topic, records, false).await
    }

    /// Appends records; a full partition drops its oldest record instead of waiting (for
    /// notifications that must never hold up their producer, as a broker's retention would).
    pub async fn send_evicting(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        self.append(topic, records, true).await
    }

    async fn append(&self, topic: &str, records: Vec<Record>, evict: bool) -> Result<()> {
        let topic = self.topic(topic)?;
        let partitions = topic.logs.len() as i32;
        for record in records {
            let p = partition_for(&record.key, partitions);
            loop {
                let freed = topic.space_freed.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                {
                    let mut log = topic.logs[p as usize].lock().expect("log lock");
                    if evict && log.records.len() >= self.inner.capacity {
                        log.records.pop_front();
                        log.base += 1;
                    }
                    if log.records.len() < self.inner.capacity {
                        let offset = log.end();
                        log.records.push_back(Arc::new(Message {
                            topic: topic.name.clone(),
                            partition: p,
                            offset,
                            key: Some(record.key),
                            payload: record.payload,
                            timestamp_ms: Some(record.timestamp_ms),
                        }));
                        break;
                    }
                }
                topic.data_ready.notify_waiters();
                freed.await;
            }
        }
        topic.data_ready.notify_waiters();
        Ok(())
    }

    pub fn consumer(&self, group: &str, topic: &str) -> Result<MemoryConsumer> {
        let topic = self.topic(topic)?;
        let member = self.inner.next_member.fetch_add(1, Ordering::Relaxed);
        {
            let mut groups = topic.groups.lock().expect("groups lock");
            let g = groups.entry(group.to_string()).or_insert_with(|| Group {
                members: Vec::new(),
                generation: 0,
                committed: vec![0; topic.logs.len()],
            });
            g.members.push(member);
            g.generation += 1;
        }
        Ok(MemoryConsumer {
            topic,
            group: group.to_string(),
            member,
            generation: 0,
            positions: HashMap::new(),
            assigned: Vec::new(),
            changed: false,
            next_start: 0,
        })
    }

    /// Records in a partition not yet trimmed (for tests and metrics).
    pub fn retained(&self, topic: &str, partition: i32) -> Result<usize> {
        let topic = self.topic(topic)?;
        let log = topic.logs[partition as usize].lock().expect("log lock");
        Ok(log.records.len())
    }
}

pub struct MemoryConsumer {
    topic: Arc<Topic>,
    group: String,
    member: u64,
    generation: u64,
    positions: HashMap<i32, i64>,
    assigned: Vec<i32>,
    changed: bool,
    next_start: usize,
}

impl MemoryConsumer {
    fn refresh_assignment(&mut self) {
        let groups = self.topic.groups.lock().expect("groups lock");
        let g = &groups[&self.group];
        if g.generation == self.generation {
            return;
        }
        self.generation = g.generation;
        let n = g.members.len().max(1);
        let me = g
            .members
            .iter()
            .position(|m| *m == self.member)
            .unwrap_or(0);
        self.assigned = (0..self.topic.logs.len() as i32)
            .filter(|p| *p as usize % n == me)
            .collect();
        self.positions = self
            .assigned
            .iter()
            .map(|p| (*p, g.committed[*p as usize]))
            .collect();
        self.changed = true;
    }

    pub async fn poll_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Message>> {
        let deadline = tokio::time::Instant::now() + wait;
        let topic = self.topic.clone();
        loop {
            let ready = topic.data_ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            self.refresh_assignment();
            let mut out = Vec::new();
            if !self.assigned.is_empty() {
                let n = self.assigned.len();
                let per_partition = max.div_ceil(n).max(1);
                for i in 0..n {
                    let p = self.assigned[(self.next_start + i) % n];
                    let log = topic.logs[p as usize].lock().expect("log lock");
                    let pos = self.positions.get(&p).copied().unwrap_or(0).max(log.base);
                    let from = (pos - log.base) as usize;
                    let take = per_partition.min(max - out.len());
                    out.extend(
                        log.records
                            .iter()
                            .skip(from)
                            .take(take)
                            .map(|m| Message::clone(m)),
                    );
                    let end = pos + out.iter().filter(|m| m.partition == p).count() as i64;
                    self.positions.insert(p, end);
                    if out.len() >= max {
                        break;
                    }
                }
                self.next_start = (self.next_start + 1) % n;
            }
            if !out.is_empty() {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, ready).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    pub fn commit(&self, offsets: &[(i32, i64)]) {
        {
            let mut groups = self.topic.groups.lock().expect("groups lock");
            if let Some(g) = groups.get_mut(&self.group) {
                for (p, next) in offsets {
                    if let Some(c) = g.committed.get_mut(*p as usize) {
                        *c = (*c).max(*next);
                    }
                }
            }
            // Trim what every group has committed.
            for (p, _) in offsets {
                let Some(min) = groups
                    .values()
                    .filter_map(|g| g.committed.get(*p as usize).copied())
                    .min()
                else {
                    continue;
                };
                let mut log = self.topic.logs[*p as usize].lock().expect("log lock");
                while log.base < min && !log.records.is_empty() {
                    log.records.pop_front();
                    log.base += 1;
                }
            }
        }
        self.topic.space_freed.notify_waiters();
    }

    pub fn seek(&mut self, partition: i32, offset: i64) {
        self.positions.insert(partition, offset);
    }

    pub fn assignment_changed(&mut self) -> bool {
        self.refresh_assignment();
        std::mem::take(&mut self.changed)
    }

    /// The offset after the last record of each assigned partition.
    pub fn end_offsets(&mut self) -> std::collections::BTreeMap<i32, i64> {
        self.refresh_assignment();
        self.assigned
            .iter()
            .map(|p| {
                (
                    *p,
                    self.topic.logs[*p as usize].lock().expect("log lock").end(),
                )
            })
            .collect()
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        if let Ok(mut groups) = self.topic.groups.lock() {
            if let Some(g) = groups.get_mut(&self.group) {
                g.members.retain(|m| *m != self.member);
                g.generation += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, n: usize) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            payload: n.to_string().into_bytes(),
            timestamp_ms: n as i64,
        }
    }

    #[tokio::test]
    async fn keys_keep_order_groups_resume_from_commits_and_members_split_partitions() {
        let bus = MemoryBus::new();
        bus.create_topic("t", 4);
        let records: Vec<Record> = (0..100).map(|i| rec(&format!("k{}", i % 7), i)).collect();
        bus.send("t", records).await.unwrap();

        let mut c = bus.consumer("g", "t").unwrap();
        let batch = c.poll_batch(1000, Duration::from_millis(50)).await.unwrap();
        assert_eq!(batch.len(), 100);
        // Same key, same partition, increasing payload order.
        let mut last: HashMap<Vec<u8>, (i32, usize)> = HashMap::new();
        for m in &batch {
            let n: usize = String::from_utf8(m.payload.clone())
                .unwrap()
                .parse()
                .unwrap();
            if let Some((p, prev)) = last.insert(m.key.clone().unwrap(), (m.partition, n)) {
                assert_eq!(p, m.partition);
                assert!(prev < n);
            }
        }
        // Commit only partition 0's first record; a new member resumes there.
        let p0: Vec<&Message> = batch.iter().filter(|m| m.partition == 0).collect();
        c.commit(&[(0, p0[0].offset + 1)]);
        drop(c);
        let mut c2 = bus.consumer("g", "t").unwrap();
        assert!(c2.assignment_changed());
        let again = c2
            .poll_batch(1000, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(again.len(), 100 - 1);

        // Two members of a new group split the partitions. The record every existing group
        // had committed was trimmed, as a broker's retention would.
        let mut a = bus.consumer("h", "t").unwrap();
        let mut b = bus.consumer("h", "t").unwrap();
        let ma = a.poll_batch(1000, Duration::from_millis(50)).await.unwrap();
        let mb = b.poll_batch(1000, Duration::from_millis(50)).await.unwrap();
        assert_eq!(ma.len() + mb.len(), 99);
        assert!(ma
            .iter()
            .all(|m| mb.iter().all(|n| n.partition != m.partition)));
    }

    #[tokio::test]
    async fn producers_wait_when_partitions_are_full() {
        let bus = MemoryBus::with_capacity(10);
        bus.create_topic("t", 1);
        let mut c = bus.consumer("g", "t").unwrap();
        let producer = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.send("t", (0..25).map(|i| rec("k", i)).collect()).await })
        };
        let mut seen = 0;
        while seen < 25 {
            let batch = c.poll_batch(100, Duration::from_millis(200)).await.unwrap();
            assert!(bus.retained("t", 0).unwrap() <= 10);
            if let Some(last) = batch.last() {
                seen += batch.len();
                c.commit(&[(0, last.offset + 1)]);
            }
        }
        producer.await.unwrap().unwrap();
        assert_eq!(seen, 25);
    }

    #[tokio::test]
    async fn evicting_sends_keep_the_newest_records_without_waiting() {
        let bus = MemoryBus::with_capacity(10);
        bus.create_topic("t", 1);
        bus.send_evicting("t", (0..25).map(|i| rec("k", i)).collect())
            .await
            .unwrap();
        assert_eq!(bus.retained("t", 0).unwrap(), 10);
        let mut c = bus.consumer("g", "t").unwrap();
        let batch = c.poll_batch(100, Duration::from_millis(50)).await.unwrap();
        let offsets: Vec<i64> = batch.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (15..25).collect::<Vec<i64>>());
    }
}
