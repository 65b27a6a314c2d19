//! Talking to the brokers: librdkafka client settings from a plan's connection keys, topic
//! administration, metadata, error classes, and the Java client's default partitioner.

use super::config::Connection;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::HashMap;
use std::time::Duration;

/// How long metadata and admin requests may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors of the brokers, by what can be done about them.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    /// The brokers cannot be reached or answered with a retriable error.
    #[error("Kafka at {brokers}: {message}")]
    Unreachable {
        /// The bootstrap brokers.
        brokers: String,
        /// What happened.
        message: String,
    },
    /// A setting the brokers refuse (a topic name, a timeout, authorization).
    #[error("Kafka at {brokers}: {message}")]
    Refused {
        /// The bootstrap brokers.
        brokers: String,
        /// What happened and how to fix it.
        message: String,
    },
}

impl KafkaClientError {
    /// Whether a retry later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, KafkaClientError::Unreachable { .. })
    }
}

/// The librdkafka settings of a connection (security included).
pub fn client_config(c: &Connection<'_>) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", c.brokers);
    // Quiet: ferry reports errors itself, with the place.
    cfg.set("log_level", "3");
    let protocol = match (c.sasl.is_some(), c.tls.is_some()) {
        (false, false) => "plaintext",
        (false, true) => "ssl",
        (true, false) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    cfg.set("security.protocol", protocol);
    if let Some(s) = c.sasl {
        cfg.set("sasl.mechanism", s.mechanism.to_ascii_uppercase());
        crate::secrets::register(&s.password);
        cfg.set("sasl.username", &s.username);
        cfg.set("sasl.password", &s.password);
    }
    if let Some(t) = c.tls {
        for (k, v) in [
            ("ssl.ca.location", &t.ca),
            ("ssl.certificate.location", &t.certificate),
            ("ssl.key.location", &t.key),
            ("ssl.key.password", &t.key_password),
        ] {
            if let Some(v) = v {
                if k == "ssl.key.password" {
                    crate::secrets::register(v);
                }
                cfg.set(k, v);
            }
        }
    }
    for (k, v) in c.properties {
        if k.contains("password") || k.contains("secret") {
            crate::secrets::register(v);
        }
        cfg.set(k, v);
    }
    cfg
}

/// The error of a broker call, classified.
pub fn classify(brokers: &str, what: &str, e: &KafkaError) -> KafkaClientError {
    let code = e.rdkafka_error_code();
    let message = format!("{what}: {e}");
    let refused = matches!(
        code,
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::InvalidTransactionTimeout
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::InvalidConfig
                | RDKafkaErrorCode::InvalidReplicationFactor
                | RDKafkaErrorCode::InvalidPartitions
        )
    ) || matches!(e, KafkaError::ClientCreation(_));
    let brokers = brokers.to_string();
    if refused {
        KafkaClientError::Refused { brokers, message }
    } else {
        KafkaClientError::Unreachable { brokers, message }
    }
}

/// A consumer without a group (partitions are assigned by ferry; offsets live in ferry's
/// checkpoints), reading only committed transactions.
pub fn consumer(c: &Connection<'_>) -> Result<BaseConsumer, KafkaClientError> {
    let mut cfg = client_config(c);
    cfg.set("group.id", "ferry-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "50");
    cfg.create().map_err(|e| classify(c.brokers, "cannot create a consumer", &e))
}

/// Partition counts of `topics` (`None` for a topic the brokers do not have).
pub fn partition_counts(
    consumer: &BaseConsumer,
    brokers: &str,
    topics: &[String],
) -> Result<HashMap<String, Option<i32>>, KafkaClientError> {
    let md = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| classify(brokers, "cannot read the cluster's metadata", &e))?;
    let mut out: HashMap<String, Option<i32>> = topics.iter().map(|t| (t.clone(), None)).collect();
    for t in md.topics() {
        if let Some(slot) = out.get_mut(t.name()) {
            if t.error().is_none() {
                *slot = Some(t.partitions().len() as i32);
            }
        }
    }
    Ok(out)
}

/// Every topic name the brokers have (internal ones left out).
pub fn topic_names(consumer: &BaseConsumer, brokers: &str) -> Result<Vec<String>, KafkaClientError> {
    let md = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| classify(brokers, "cannot read the cluster's metadata", &e))?;
    let mut names: Vec<String> =
        md.topics().iter().map(|t| t.name().to_string()).filter(|n| !n.starts_with("__")).collect();
    names.sort();
    Ok(names)
}

/// An admin client.
pub fn admin(c: &Connection<'_>) -> Result<AdminClient<DefaultClientContext>, KafkaClientError> {
    client_config(c).create().map_err(|e| classify(c.brokers, "cannot create an admin client", &e))
}

/// Creates `topics` that are missing (`compact`: with `cleanup.policy=compact`); a topic that
/// exists already is fine.
pub fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    brokers: &str,
    topics: &[String],
    partitions: i32,
    replication: i32,
    compact: bool,
) -> Result<(), KafkaClientError> {
    if topics.is_empty() {
        return Ok(());
    }
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let n = NewTopic::new(t, partitions, TopicReplication::Fixed(replication));
            if compact {
                n.set("cleanup.policy", "compact")
            } else {
                n
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics(&new, &opts))
        .map_err(|e| classify(brokers, "cannot create topics", &e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                let e = KafkaError::AdminOp(code);
                return Err(classify(brokers, &format!("cannot create topic {topic}"), &e));
            }
        }
    }
    Ok(())
}

/// The brokers' `transaction.max.timeout.ms` (of the first broker the metadata names).
pub fn max_transaction_timeout_ms(
    admin: &AdminClient<DefaultClientContext>,
    consumer: &BaseConsumer,
    brokers: &str,
) -> Result<Option<u64>, KafkaClientError> {
    let md = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| classify(brokers, "cannot read the cluster's metadata", &e))?;
    let Some(b) = md.brokers().first() else { return Ok(None) };
    let opts = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let spec = [ResourceSpecifier::Broker(b.id())];
    let res = futures::executor::block_on(admin.describe_configs(&spec, &opts))
        .map_err(|e| classify(brokers, "cannot read the broker's settings", &e))?;
    Ok(res
        .into_iter()
        .flatten()
        .find_map(|r| r.get("transaction.max.timeout.ms").and_then(|e| e.value.as_ref()).and_then(|v| v.parse().ok())))
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for a keyed message:
/// `toPositive(murmur2(key)) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as i64 % partitions.max(1) as i64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_clients_values() {
        // The Java client's own test vectors (Utils.murmur2).
        for (input, want) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input.as_bytes()), want, "{input}");
        }
        assert_eq!(partition_for_key(b"21", 7), ((-973_932_308i32 & 0x7fff_ffff) % 7));
    }
}
