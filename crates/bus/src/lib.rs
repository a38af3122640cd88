//! The message bus the roles talk through: Apache Kafka (via rdkafka, linked only by this
//! crate) when bootstrap servers are configured, else an in-process bus with the semantics the
//! code relies on: topics with partitions, keyed records (same key → same partition), consumer
//! groups that split partitions between members, offsets, and bounded memory (a producer waits
//! when a partition holds too many records its groups have not committed).
//!
//! Commits here are advisory for consumers that keep their authoritative positions elsewhere
//! (the ingest role stores them in PostgreSQL in the same transaction as its rows).

mod kafka;
mod memory;

use std::time::Duration;

pub use kafka::{KafkaBus, KafkaConsumer};
pub use memory::{MemoryBus, MemoryConsumer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("bus is closed")]
    Closed,
}

pub type Result<T> = std::result::Result<T, Error>;

/// A record to send.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    /// Producer timestamp in milliseconds since the epoch (Kafka's create time).
    pub timestamp_ms: i64,
}

/// A consumed record with its position.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub timestamp_ms: Option<i64>,
}

/// The partition a key goes to (the same for both buses, so tests can predict placement).
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    // FNV-1a: stable across processes and versions.
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % partitions.max(1) as u32) as i32
}

/// Either bus, chosen at wiring time.
#[derive(Clone)]
pub enum Bus {
    Memory(MemoryBus),
    Kafka(KafkaBus),
}

impl Bus {
    /// Kafka when `bootstrap_servers` is given, else a new in-process bus.
    pub fn new(bootstrap_servers: Option<&str>) -> Result<Bus> {
        match bootstrap_servers {
            Some(servers) => Ok(Bus::Kafka(KafkaBus::new(servers)?)),
            None => Ok(Bus::Memory(MemoryBus::new())),
        }
    }

    /// Uses static group membership with this id (Kafka only; e.g. a StatefulSet pod name).
    pub fn with_group_instance_id(mut self, id: Option<String>) -> Bus {
        if let Bus::Kafka(k) = &mut self {
            k.set_group_instance_id(id);
        }
        self
    }

    pub fn is_kafka(&self) -> bool {
        matches!(self, Bus::Kafka(_))
    }

    /// Creates topics that do not exist yet; existing ones are left as they are.
    pub async fn create_topics(
        &self,
        topics: &[&str],
        partitions: i32,
        replication: i32,
    ) -> Result<()> {
        match self {
            Bus::Memory(b) => {
                for t in topics {
                    b.create_topic(t, partitions);
                }
                Ok(())
            }
            Bus::Kafka(b) => b.create_topics(topics, partitions, replication).await,
        }
    }

    /// Sends records and waits until the bus has accepted all of them.
    pub async fn send(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        match self {
            Bus::Memory(b) => b.send(topic, records).await,
            Bus::Kafka(b) => b.send(topic, records).await,
        }
    }

    /// Like [`Bus::send`], but never waits for consumers: the in-process bus drops the oldest
    /// records of a full partition (Kafka's retention does the same on its own schedule).
    pub async fn send_evicting(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        match self {
            Bus::Memory(b) => b.send_evicting(topic, records).await,
            Bus::Kafka(b) => b.send(topic, records).await,
        }
    }

    /// A consumer of `topic` for `group`, with partitions assigned as `assignment` says (the
    /// in-process bus always uses its own group logic).
    pub fn consumer_with(
        &self,
        group: &str,
        topic: &str,
        assignment: &Assignment,
    ) -> Result<Consumer> {
        match (self, assignment) {
            (
                Bus::Kafka(b),
                Assignment::Static {
                    replicas,
                    index,
                    start,
                },
            ) => Ok(Consumer::Kafka(
                b.consumer_static(group, topic, *replicas, *index, start)?,
            )),
            _ => self.consumer(group, topic),
        }
    }

    /// Joins consumer group `group` on `topic`.
    pub fn consumer(&self, group: &str, topic: &str) -> Result<Consumer> {
        match self {
            Bus::Memory(b) => Ok(Consumer::Memory(b.consumer(group, topic)?)),
            Bus::Kafka(b) => Ok(Consumer::Kafka(b.consumer(group, topic)?)),
        }
    }
}

/// How a consumer gets its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Kafka group membership: the broker balances partitions between members.
    Group,
    /// This process reads partitions `p % replicas == index`, starting at the given offsets.
    Static {
        replicas: i32,
        index: i32,
        start: std::collections::BTreeMap<i32, i64>,
    },
}

/// A member of a consumer group.
pub enum Consumer {
    Memory(MemoryConsumer),
    Kafka(KafkaConsumer),
}

impl Consumer {
    /// Up to `max` records: waits up to `wait` for the first, then takes what is ready.
    pub async fn poll_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Message>> {
        match self {
            Consumer::Memory(c) => c.poll_batch(max, wait).await,
            Consumer::Kafka(c) => c.poll_batch(max, wait).await,
        }
    }

    /// Records the group's position: `next_offset` per partition.
    pub fn commit(&self, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        match self {
            Consumer::Memory(c) => {
                c.commit(offsets);
                Ok(())
            }
            Consumer::Kafka(c) => c.commit(topic, offsets),
        }
    }

    /// Moves the position of one partition (used to resume from offsets stored elsewhere).
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        match self {
            Consumer::Memory(c) => {
                c.seek(partition, offset);
                Ok(())
            }
            Consumer::Kafka(c) => c.seek(topic, partition, offset),
        }
    }

    /// The offset after the last record of each partition assigned to this member.
    pub async fn end_offsets(
        &mut self,
        topic: &str,
    ) -> Result<std::collections::BTreeMap<i32, i64>> {
        match self {
            Consumer::Memory(c) => Ok(c.end_offsets()),
            Consumer::Kafka(c) => c.end_offsets(topic).await,
        }
    }

    /// True once after each change of this member's partition assignment.
    pub fn assignment_changed(&mut self) -> bool {
        match self {
            Consumer::Memory(c) => c.assignment_changed(),
            Consumer::Kafka(c) => c.assignment_changed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioning_is_stable_and_spread() {
        assert_eq!(partition_for(b"user-1", 6), partition_for(b"user-1", 6));
        let mut seen = [0usize; 6];
        for i in 0..6000 {
            seen[partition_for(format!("user-{i}").as_bytes(), 6) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 700), "{seen:?}");
    }
}
