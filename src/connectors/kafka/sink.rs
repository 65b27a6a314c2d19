//! The Kafka target's writer: one producer per sink worker.
//!
//! ```text
//!  write(epoch, change) ─► topic (template) ─► messages (format) ─► partition = murmur2(key) % n
//!     at-least-once: sent at once (idempotent producer); commit(e) = flush, delivery checked
//!     exactly-once:  kept per epoch; the open transaction's epoch is sent at once
//!                    commit(e) = [begin] send what of epochs ≤ e is unsent
//!                                + progress record (task instance, worker → e) in the
//!                                  compacted progress topic, then commit_transaction
//! ```
//!
//! Exactly-once: the transactional id is `<task>-<worker>`, so `init_transactions` at the start
//! of a run fences every older producer of the same worker (a zombie of a crashed or a second
//! run) and aborts its open transaction. The progress records are read back after that (with
//! `read_committed`), and the sink skips the epochs they cover; a replayed epoch holds the same
//! changes as before the crash, so each committed change is in Kafka exactly once. Messages of
//! an epoch stay in memory until their transaction commits (one checkpoint interval of one
//! worker's changes): a write of an earlier epoch while a later one's transaction is open
//! aborts that transaction, and both are sent again in order.

use super::client::{self, classify, partition_for_key, KafkaClientError, REQUEST_TIMEOUT};
use super::config::KafkaTarget;
use super::format::{Encoder, Message, Names};
use crate::connector::{SinkError, SinkWriter, WriterCtx};
use crate::plan::config::{parse_duration_ms, Semantics};
use crate::plan::Compiled;
use crate::state::TaskState;
use ferry_operators::template::{Names as TemplateNames, Template};
use ferry_operators::{Change, SchemaEvent, TableId};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The state-store file naming this task's instance in progress records: a new task of the
/// same name (or `--from-scratch`) gets a new one, so old progress skips nothing.
const INSTANCE: &str = "sinks/kafka/instance.json";

/// Records the first failed delivery.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                *f = Some(format!("delivery to {} partition {} failed: {e}", m.topic(), m.partition()));
            }
        }
    }
}

/// One message waiting for its transaction.
struct Pending {
    topic: Arc<str>,
    partition: i32,
    msg: Message,
}

/// An epoch's messages and how many of them the open transaction has.
#[derive(Default)]
struct EpochMsgs {
    msgs: Vec<Pending>,
    sent: usize,
}

/// The task instance's id, made by [`prepare_instance`].
pub fn instance(state: &TaskState) -> Result<String, String> {
    let b = state.store().get(&state.path(INSTANCE)).map_err(|e| e.to_string())?;
    let v: serde_json::Value = match b {
        Some(b) => serde_json::from_slice(&b).map_err(|e| e.to_string())?,
        None => return Ok("0".into()),
    };
    Ok(v["instance"].as_str().unwrap_or("0").to_string())
}

/// Makes a new instance id when the task is new (or starts from scratch).
pub fn prepare_instance(state: &TaskState, renew: bool) -> Result<(), String> {
    let path = state.path(INSTANCE);
    if !renew && state.store().get(&path).map_err(|e| e.to_string())?.is_some() {
        return Ok(());
    }
    let id = crate::runtime::now_micros().to_string();
    state
        .store()
        .put(&path, serde_json::to_vec(&serde_json::json!({ "instance": id })).expect("serializes"))
        .map_err(|e| e.to_string())
}

/// The Kafka writer of one sink worker.
pub struct KafkaWriter {
    plan: Arc<Compiled>,
    cfg: KafkaTarget,
    producer: ThreadedProducer<Deliveries>,
    admin: AdminClient<DefaultClientContext>,
    meta: BaseConsumer,
    encoder: Encoder,
    exactly_once: bool,
    tombstones: bool,
    topic_template: Template,
    schema_topic: String,
    /// Partition counts of the topics written so far.
    partitions: HashMap<Arc<str>, i32>,
    /// Per table, its topic when the template names no record field.
    static_topics: HashMap<TableId, Arc<str>>,
    epochs: BTreeMap<u64, EpochMsgs>,
    open: Option<u64>,
    /// A commit whose `commit_transaction` failed retriably: the retry only commits.
    committing: Option<u64>,
    committed: u64,
    progress_key: String,
    round_robin: i32,
    scratch: Vec<Message>,
}

fn fenced(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => {
            t.is_fatal()
                || matches!(t.code(), RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
        }
        other => matches!(
            other.rdkafka_error_code(),
            Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch | RDKafkaErrorCode::Fatal)
        ),
    }
}

fn requires_abort(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.txn_requires_abort())
}

fn transient(e: KafkaClientError) -> SinkError {
    match e {
        KafkaClientError::Refused { .. } => SinkError::Restart(e.to_string()),
        KafkaClientError::Unreachable { .. } => SinkError::Transient(e.to_string()),
    }
}

impl KafkaWriter {
    /// The writer of `cx.worker`: its producer (exactly-once: transactions initialized, which
    /// fences older producers of the same worker) and the epoch it committed last.
    pub fn new(cx: &WriterCtx, cfg: &KafkaTarget) -> Result<KafkaWriter, SinkError> {
        let plan = cx.plan.clone();
        let task = &plan.plan.settings.task;
        let conn = cfg.connection();
        let exactly_once = cx.semantics == Semantics::ExactlyOnce;
        let mut pc = client::client_config(&conn);
        pc.set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.messages", "100000")
            .set("queue.buffering.max.kbytes", "65536")
            .set("enable.idempotence", "true");
        let txn_id = format!("{task}-{}", cx.worker);
        if exactly_once {
            let ms = parse_duration_ms(&cfg.transaction_timeout).expect("validated");
            pc.set("transactional.id", &txn_id).set("transaction.timeout.ms", ms.to_string());
        }
        let producer: ThreadedProducer<Deliveries> = pc
            .create_with_context(Deliveries::default())
            .map_err(|e| transient(classify(&cfg.brokers, "cannot create a producer", &e)))?;
        let admin = client::admin(&conn).map_err(transient)?;
        let meta = client::consumer(&conn).map_err(transient)?;
        let instance = instance(&cx.state).map_err(SinkError::Transient)?;
        let progress_key = format!("{task}/{instance}/w{}", cx.worker);
        let mut committed = 0;
        if exactly_once {
            producer.init_transactions(Duration::from_secs(60)).map_err(|e| {
                if fenced(&e) {
                    SinkError::Fatal(format!("Kafka transactional id {txn_id}: {e}"))
                } else {
                    transient(classify(&cfg.brokers, &format!("cannot start transactions as {txn_id}"), &e))
                }
            })?;
            committed = read_progress(&meta, &cfg.brokers, &cfg.progress_topic, &progress_key).map_err(transient)?;
            tracing::debug!(
                worker = cx.worker,
                committed,
                "Kafka exactly-once sink resumes after its last committed epoch"
            );
        }
        let topic_template = Template::parse(&cfg.topic).expect("validated");
        let schema_topic = Template::parse(&cfg.schema_topic)
            .expect("validated")
            .render(&TemplateNames { datasource: &plan.plan.source_name, ..Default::default() }, None)
            .map_err(|e| SinkError::Definite(e.message))?;
        Ok(KafkaWriter {
            encoder: Encoder::new(cfg.format, &plan.plan.source.kind, &plan.plan.source_name),
            tombstones: cfg.tombstones(),
            plan,
            cfg: cfg.clone(),
            producer,
            admin,
            meta,
            exactly_once,
            topic_template,
            schema_topic,
            partitions: HashMap::new(),
            static_topics: HashMap::new(),
            epochs: BTreeMap::new(),
            open: None,
            committing: None,
            committed,
            progress_key,
            round_robin: 0,
            scratch: Vec::new(),
        })
    }

    fn topic_of(&mut self, table: TableId, change: &Change) -> Result<Arc<str>, SinkError> {
        if let Some(t) = self.static_topics.get(&table) {
            return Ok(t.clone());
        }
        let src = &self.plan.catalog.get(table).name;
        let names = TemplateNames::of(&self.plan.plan.source_name, src);
        let schema = change.schema.as_deref().unwrap_or(&self.plan.table(table).target_schema);
        let rendered = self
            .topic_template
            .render(&names, Some((schema, change.image().as_slice())))
            .map_err(|e| SinkError::Definite(format!("topic name from the template: {}", e.message)))?;
        super::config::check_topic_name(&rendered)
            .map_err(|e| SinkError::Definite(format!("topic name from the template: {e}")))?;
        let t: Arc<str> = rendered.into();
        if self.topic_template.is_static() {
            self.static_topics.insert(table, t.clone());
        }
        Ok(t)
    }

    /// The partition count of `topic`, creating the topic when it is missing.
    fn partition_count(&mut self, topic: &Arc<str>) -> Result<i32, SinkError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let brokers = self.cfg.brokers.clone();
        let name = topic.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut created = false;
        loop {
            let counts =
                client::partition_counts(&self.meta, &brokers, std::slice::from_ref(&name)).map_err(transient)?;
            if let Some(Some(n)) = counts.get(&name) {
                self.partitions.insert(topic.clone(), *n);
                return Ok(*n);
            }
            if !created {
                client::create_topics(
                    &self.admin,
                    &brokers,
                    std::slice::from_ref(&name),
                    self.cfg.partitions,
                    self.cfg.replication,
                    false,
                )
                .map_err(transient)?;
                created = true;
            }
            if Instant::now() > deadline {
                return Err(SinkError::Transient(format!(
                    "topic {name} was created but its partitions are not known yet"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn partition(&mut self, topic: &Arc<str>, msg: &Message) -> Result<i32, SinkError> {
        let n = self.partition_count(topic)?;
        Ok(match (&msg.key, &msg.value) {
            (Some(k), _) => partition_for_key(k, n),
            (None, _) => {
                self.round_robin = (self.round_robin + 1) % n;
                self.round_robin
            }
        })
    }

    fn send(&self, topic: &str, partition: i32, msg: &Message) -> Result<(), SinkError> {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(partition);
        if let Some(k) = &msg.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &msg.value {
            rec = rec.payload(v.as_slice());
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) if fenced(&e) => return Err(self.fenced_error(&e)),
                Err((e, _)) => {
                    if let Some(f) = self.fatal() {
                        return Err(f);
                    }
                    return Err(SinkError::Restart(format!("cannot send to {topic} partition {partition}: {e}")));
                }
            }
        }
    }

    fn fenced_error(&self, e: &KafkaError) -> SinkError {
        SinkError::Fatal(format!(
            "this process was fenced by a newer producer of task `{}` ({e}): another process runs the same task; this one stops",
            self.plan.plan.settings.task
        ))
    }

    /// The producer's fatal error (fenced by a newer producer of the same transactional id).
    fn fatal(&self) -> Option<SinkError> {
        self.producer.client().fatal_error().map(|(code, msg)| {
            SinkError::Fatal(format!(
                "this process was fenced by a newer producer of task `{}` ({code:?}: {msg}): another process runs the same task; this one stops",
                self.plan.plan.settings.task
            ))
        })
    }

    fn check_deliveries(&self) -> Result<(), SinkError> {
        if let Some(f) = self.fatal() {
            return Err(f);
        }
        let failed = self.producer.context().failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        match failed {
            Some(f) => Err(SinkError::Restart(f)),
            None => Ok(()),
        }
    }

    /// Opens the transaction for `epoch` (none open) and sends what of it is unsent.
    fn open_for(&mut self, epoch: u64) -> Result<(), SinkError> {
        if self.open.is_none() {
            self.producer.begin_transaction().map_err(|e| self.txn_error("begin a transaction", &e))?;
            self.open = Some(epoch);
        }
        self.send_unsent(epoch)
    }

    fn send_unsent(&mut self, epoch: u64) -> Result<(), SinkError> {
        let Some(em) = self.epochs.get(&epoch) else { return Ok(()) };
        for p in &em.msgs[em.sent..] {
            self.send(&p.topic, p.partition, &p.msg)?;
        }
        let n = em.msgs.len();
        self.epochs.get_mut(&epoch).expect("present").sent = n;
        Ok(())
    }

    fn txn_error(&self, what: &str, e: &KafkaError) -> SinkError {
        if fenced(e) {
            return self.fenced_error(e);
        }
        if let Some(f) = self.fatal() {
            return f;
        }
        SinkError::Restart(format!("Kafka: cannot {what}: {e}"))
    }

    fn abort_open(&mut self) -> Result<(), SinkError> {
        if let Some(o) = self.open.take() {
            tracing::debug!(
                epoch = o,
                "an earlier epoch has messages: its transaction goes first, this one is sent again"
            );
            self.producer
                .abort_transaction(Duration::from_secs(60))
                .map_err(|e| self.txn_error("abort a transaction", &e))?;
            for em in self.epochs.values_mut() {
                em.sent = 0;
            }
        }
        Ok(())
    }

    /// Adds a message of `epoch`: sent at once (at-least-once, or the open transaction's
    /// epoch), else kept for its transaction.
    fn put(&mut self, epoch: u64, topic: Arc<str>, msg: Message) -> Result<(), SinkError> {
        let partition = self.partition(&topic, &msg)?;
        if !self.exactly_once {
            return self.send(&topic, partition, &msg);
        }
        let em = self.epochs.entry(epoch).or_default();
        em.msgs.push(Pending { topic, partition, msg });
        match self.open {
            None if self.committing.is_none() => self.open_for(epoch),
            Some(o) if o == epoch => self.send_unsent(epoch),
            _ => Ok(()),
        }
    }
}

/// The last epoch `key` committed, from the progress topic (read to its end with
/// `read_committed`); 0 when the topic or the key is missing.
fn read_progress(consumer: &BaseConsumer, brokers: &str, topic: &str, key: &str) -> Result<u64, KafkaClientError> {
    let counts = client::partition_counts(consumer, brokers, &[topic.to_string()])?;
    let Some(Some(n)) = counts.get(topic).copied() else { return Ok(0) };
    let mut last = 0;
    for p in 0..n {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
            .map_err(|e| classify(brokers, "cannot read the progress topic's offsets", &e))?;
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| classify(brokers, "progress topic", &e))?;
        consumer.assign(&tpl).map_err(|e| classify(brokers, "cannot read the progress topic", &e))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let pos = consumer
                .position()
                .ok()
                .and_then(|l| l.find_partition(topic, p).and_then(|e| e.offset().to_raw()))
                .unwrap_or(-1);
            if pos >= high {
                break;
            }
            if Instant::now() > deadline {
                return Err(KafkaClientError::Unreachable {
                    brokers: brokers.into(),
                    message: format!("reading the progress topic {topic} did not reach its end in 60 s"),
                });
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if m.key() == Some(key.as_bytes()) {
                        if let Some(e) = m.payload().and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok()) {
                            last = e["epoch"].as_u64().unwrap_or(0);
                        }
                    }
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
                Some(Err(e)) => return Err(classify(brokers, "cannot read the progress topic", &e)),
                None => {}
            }
        }
    }
    let _ = consumer.unassign();
    Ok(last)
}

impl SinkWriter for KafkaWriter {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn write(&mut self, epoch: u64, table: TableId, change: &Change) -> Result<(), SinkError> {
        let topic = self.topic_of(table, change)?;
        let tp = self.plan.table(table);
        let schema = change.schema.clone();
        let schema = schema.as_deref().unwrap_or(&tp.target_schema);
        let (db, tb) = crate::connector::target_names(&self.plan, table, schema, change)?;
        let plan = self.plan.clone();
        let names = Names { source: &plan.catalog.get(table).name, target: (&db, &tb) };
        let mut msgs = std::mem::take(&mut self.scratch);
        self.encoder.change(table, schema, change, &names, self.tombstones, &mut msgs);
        let mut result = Ok(());
        for m in msgs.drain(..) {
            if result.is_ok() {
                result = self.put(epoch, topic.clone(), m);
            }
        }
        self.scratch = msgs;
        result
    }

    fn schema_change(&mut self, epoch: u64, event: &SchemaEvent) -> Result<(), SinkError> {
        let plan = self.plan.clone();
        let src = &plan.catalog.get(event.table).name;
        let tp = plan.table(event.table);
        let (db, tb) = tp.static_names.clone().unwrap_or_else(|| (src.database.clone(), src.table.clone()));
        let topic: Arc<str> = if self.cfg.format == super::config::Format::DebeziumJson {
            self.schema_topic.clone().into()
        } else if self.topic_template.is_static() {
            let names = TemplateNames::of(&plan.plan.source_name, src);
            self.topic_template.render(&names, None).map_err(|e| SinkError::Definite(e.message))?.into()
        } else {
            tracing::warn!(table = %src, statement = %event.statement, "the topic template reads record fields: the schema change has no topic and is not written to Kafka");
            return Ok(());
        };
        let msg = self.encoder.schema_change(event, &Names { source: src, target: (&db, &tb) });
        self.put(epoch, topic, msg)
    }

    fn commit(&mut self, epoch: u64) -> Result<(), SinkError> {
        if !self.exactly_once {
            self.producer
                .flush(Duration::from_secs(120))
                .map_err(|e| SinkError::Restart(format!("Kafka: flush: {e}")))?;
            return self.check_deliveries();
        }
        if self.committing != Some(epoch) {
            if self.open.is_some_and(|o| o > epoch) && self.epochs.range(..=epoch).next().is_some() {
                // A transaction of a later epoch is open, and this epoch has messages: they
                // must commit first.
                self.abort_open()?;
            }
            let due: Vec<u64> = self.epochs.range(..=epoch).map(|(e, _)| *e).collect();
            if due.is_empty() {
                // Nothing of this epoch (a replayed epoch holds nothing either); an open
                // transaction belongs to a later epoch.
                return Ok(());
            }
            if self.open.is_none() {
                self.producer.begin_transaction().map_err(|e| self.txn_error("begin a transaction", &e))?;
                self.open = Some(epoch);
            }
            for e in due {
                self.send_unsent(e)?;
            }
            let progress = Message {
                key: Some(self.progress_key.clone().into_bytes()),
                value: Some(serde_json::to_vec(&serde_json::json!({ "epoch": epoch })).expect("serializes")),
            };
            let topic = self.cfg.progress_topic.clone();
            self.send(&topic, 0, &progress)?;
            self.committing = Some(epoch);
        }
        match self.producer.commit_transaction(Duration::from_secs(120)) {
            Ok(()) => {}
            Err(e) if fenced(&e) => return Err(self.fenced_error(&e)),
            Err(e) if self.fatal().is_some() => return Err(self.fatal().unwrap_or_else(|| self.fenced_error(&e))),
            Err(e) if requires_abort(&e) => {
                self.committing = None;
                self.abort_open()?;
                return Err(SinkError::Restart(format!("Kafka: the transaction of epoch {epoch} failed: {e}")));
            }
            Err(e) => return Err(SinkError::Transient(format!("Kafka: committing epoch {epoch}: {e}"))),
        }
        self.committing = None;
        self.open = None;
        let later = self.epochs.split_off(&(epoch + 1));
        self.epochs = later;
        self.committed = self.committed.max(epoch);
        let _ = self.check_deliveries();
        // Later epochs already have messages: the next transaction starts with them.
        if let Some(&next) = self.epochs.keys().next() {
            self.open_for(next)?;
        }
        Ok(())
    }

    fn committed(&self) -> u64 {
        self.committed
    }
}

impl Drop for KafkaWriter {
    fn drop(&mut self) {
        if !self.exactly_once {
            let _ = self.producer.flush(Duration::from_secs(10));
        }
    }
}
