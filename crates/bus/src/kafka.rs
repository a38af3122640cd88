//! Apache Kafka through rdkafka: topic creation, an idempotent batching producer, and group
//! consumers with manual commits and rebalance tracking.

use crate::{Message, Record, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message as _, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct KafkaBus {
    servers: String,
    producer: FutureProducer,
    /// Static group membership (KIP-345): a restarted member with the same id takes its
    /// partitions back at once instead of waiting for the dead one to time out.
    group_instance_id: Option<String>,
}

impl KafkaBus {
    pub fn new(servers: &str) -> Result<KafkaBus> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "120000")
            .set("enable.idempotence", "true")
            .create()?;
        Ok(KafkaBus {
            servers: servers.to_string(),
            producer,
            group_instance_id: None,
        })
    }

    pub async fn create_topics(
        &self,
        topics: &[&str],
        partitions: i32,
        replication: i32,
    ) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.servers)
            .create()?;
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.create_topics(&new, &opts).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(KafkaError::AdminOp(code).into()).inspect_err(|_| {
                        tracing::error!(%topic, ?code, "topic creation failed");
                    })
                }
            }
        }
        Ok(())
    }

    pub async fn send(&self, topic: &str, records: Vec<Record>) -> Result<()> {
        let mut pending = Vec::with_capacity(records.len());
        for r in &records {
            loop {
                let record = FutureRecord::to(topic)
                    .key(&r.key)
                    .payload(&r.payload)
                    .timestamp(r.timestamp_ms);
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // Backpressure: let librdkafka drain its queue.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e.into()),
                Err(_) => return Err(crate::Error::Closed),
            }
        }
        Ok(())
    }

    pub fn set_group_instance_id(&mut self, id: Option<String>) {
        self.group_instance_id = id;
    }

    /// A consumer that is assigned its partitions directly (no group membership, so no
    /// rebalance can stall it): partitions `p` with `p % replicas == index`, each starting at
    /// `start[p]` (or the beginning).
    pub fn consumer_static(
        &self,
        group: &str,
        topic: &str,
        replicas: i32,
        index: i32,
        start: &std::collections::BTreeMap<i32, i64>,
    ) -> Result<KafkaConsumer> {
        let consumer = self.consumer_config(group)?;
        let metadata = consumer
            .consumer
            .fetch_metadata(Some(topic), Timeout::After(Duration::from_secs(30)))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        if partitions == 0 {
            return Err(crate::Error::UnknownTopic(topic.to_string()));
        }
        let mut tpl = TopicPartitionList::new();
        for p in (0..partitions).filter(|p| p % replicas.max(1) == index) {
            let offset = start
                .get(&p)
                .map(|o| Offset::Offset(*o))
                .unwrap_or(Offset::Beginning);
            tpl.add_partition_offset(topic, p, offset)?;
        }
        consumer.consumer.assign(&tpl)?;
        tracing::info!(partitions = tpl.count(), %topic, "partitions assigned statically");
        Ok(consumer)
    }

    fn consumer_config(&self, group: &str) -> Result<KafkaConsumer> {
        let context = RebalanceFlag {
            changed: Arc::new(AtomicBool::new(false)),
        };
        let changed = context.changed.clone();
        let mut config = ClientConfig::new();
        if let Some(id) = &self.group_instance_id {
            config.set("group.instance.id", id);
        }
        let consumer: StreamConsumer<RebalanceFlag> = config
            .set("bootstrap.servers", &self.servers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // A member that died (SIGKILL, lost node) gives its partitions back quickly.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("max.poll.interval.ms", "30000")
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "65536")
            .create_with_context(context)?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            changed,
        })
    }

    pub fn consumer(&self, group: &str, topic: &str) -> Result<KafkaConsumer> {
        let consumer = self.consumer_config(group)?;
        consumer.consumer.subscribe(&[topic])?;
        Ok(consumer)
    }
}

/// Notes every partition assignment so the owner can re-read its stored positions.
struct RebalanceFlag {
    changed: Arc<AtomicBool>,
}

impl ClientContext for RebalanceFlag {}

impl ConsumerContext for RebalanceFlag {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
        self.changed.store(true, Ordering::SeqCst);
    }
}

pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer<RebalanceFlag>>,
    changed: Arc<AtomicBool>,
}

impl KafkaConsumer {
    pub async fn poll_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => return Ok(out),
            Ok(m) => m?,
        };
        out.push(owned(&first));
        drop(first);
        while out.len() < max {
            match tokio::time::timeout(Duration::from_millis(1), self.consumer.recv()).await {
                Ok(m) => out.push(owned(&m?)),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    pub fn commit(&self, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (p, next) in offsets {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*next))?;
        }
        self.consumer.commit(&tpl, CommitMode::Async)?;
        Ok(())
    }

    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        self.consumer.seek(
            topic,
            partition,
            Offset::Offset(offset),
            Timeout::After(Duration::from_secs(10)),
        )?;
        Ok(())
    }

    pub fn assignment_changed(&mut self) -> bool {
        self.changed.swap(false, Ordering::SeqCst)
    }

    /// The high watermark (offset after the last record) of every partition of `topic`
    /// assigned to this consumer, asked of the broker.
    pub async fn end_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>> {
        let consumer = self.consumer.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let assigned = consumer.assignment()?;
            let mut ends = BTreeMap::new();
            for e in assigned.elements_for_topic(&topic) {
                let (_, high) = consumer.fetch_watermarks(
                    &topic,
                    e.partition(),
                    Timeout::After(Duration::from_secs(5)),
                )?;
                ends.insert(e.partition(), high);
            }
            Ok(ends)
        })
        .await
        .map_err(|_| crate::Error::Closed)?
    }
}

fn owned(m: &rdkafka::message::BorrowedMessage<'_>) -> Message {
    Message {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis(),
    }
}
