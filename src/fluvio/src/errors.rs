//! Mapping the `fluvio` crate's errors onto [`LogError`].
//!
//! The client returns `anyhow::Error` wrapping [`FluvioError`], [`ErrorCode`],
//! `ApiError` (admin), socket and I/O errors. kappa only needs to know which of its own
//! cases an error is: unknown topic, topic exists, unreachable cluster (transient),
//! offline partition (transient), or anything else ([`LogError::Backend`], with whether
//! an append may have been stored).

use fluvio::dataplane::link::ErrorCode;
use fluvio::FluvioError;
use fluvio_sc_schema::ApiError;
use kappa_log::LogError;

/// What was being done when an error happened, for the error's context.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// Connecting to the cluster.
    Connect,
    /// An admin request about a topic (create, describe, list).
    Admin(&'a str),
    /// Reading a partition.
    Read(&'a str, u32),
    /// Appending to a partition.
    Append(&'a str, u32),
}

impl Op<'_> {
    fn topic(&self) -> &str {
        match self {
            Op::Connect => "",
            Op::Admin(t) | Op::Read(t, _) | Op::Append(t, _) => t,
        }
    }

    fn partition(&self) -> u32 {
        match self {
            Op::Read(_, p) | Op::Append(_, p) => *p,
            _ => 0,
        }
    }

    fn describe(&self) -> String {
        match self {
            Op::Connect => "connecting".to_string(),
            Op::Admin(t) => format!("admin request on topic '{t}'"),
            Op::Read(t, p) => format!("reading {t}/{p}"),
            Op::Append(t, p) => format!("appending to {t}/{p}"),
        }
    }
}

/// Maps an error of the client to a [`LogError`] (`topic` in `op` is kappa's name).
pub(crate) fn classify(endpoint: &str, op: Op<'_>, err: &anyhow::Error) -> LogError {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<FluvioError>() {
            if let Some(mapped) = from_fluvio_error(endpoint, op, e) {
                return mapped;
            }
        }
        if let Some(code) = cause.downcast_ref::<ErrorCode>() {
            if let Some(mapped) = from_code(op, code) {
                return mapped;
            }
        }
        if let Some(ApiError::Code(code, _)) = cause.downcast_ref::<ApiError>() {
            if let Some(mapped) = from_code(op, code) {
                return mapped;
            }
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return unreachable(endpoint, err);
        }
        // No answer in time (the partition's leader is down or hung; the SC may still
        // answer): transient, except for an append, which may have been stored.
        if cause
            .downcast_ref::<tokio::time::error::Elapsed>()
            .is_some()
        {
            return match op {
                Op::Read(topic, partition) => LogError::PartitionOffline {
                    topic: topic.to_string(),
                    partition,
                    reason: "no answer from the partition's leader in time".into(),
                },
                Op::Append(..) => backend(op, err),
                Op::Connect | Op::Admin(_) => unreachable(endpoint, err),
            };
        }
    }
    backend(op, err)
}

/// Maps an error code a consumer stream yielded.
pub(crate) fn classify_code(op: Op<'_>, code: &ErrorCode) -> LogError {
    from_code(op, code).unwrap_or_else(|| LogError::Backend {
        backend: "fluvio",
        context: op.describe(),
        reason: code.to_string(),
        may_have_been_written: matches!(op, Op::Append(..)),
    })
}

fn from_fluvio_error(endpoint: &str, op: Op<'_>, e: &FluvioError) -> Option<LogError> {
    Some(match e {
        FluvioError::TopicNotFound(_) => LogError::UnknownTopic(op.topic().to_string()),
        FluvioError::PartitionNotFound(_, p)
        | FluvioError::Producer(fluvio::ProducerError::PartitionNotFound(p)) => {
            LogError::PartitionOffline {
                topic: op.topic().to_string(),
                partition: *p,
                reason: "the client knows no leader for it yet".to_string(),
            }
        }
        FluvioError::SPUNotFound(spu) => LogError::PartitionOffline {
            topic: op.topic().to_string(),
            partition: op.partition(),
            reason: format!("its leader SPU {spu} is unknown"),
        },
        FluvioError::Io(io) => LogError::Unreachable {
            endpoint: endpoint.to_string(),
            reason: io.to_string(),
        },
        FluvioError::Socket(s) => LogError::Unreachable {
            endpoint: endpoint.to_string(),
            reason: s.to_string(),
        },
        FluvioError::Producer(fluvio::ProducerError::SpuErrorCode(code)) => {
            return from_code(op, code)
        }
        FluvioError::AdminApi(ApiError::Code(code, _)) => return from_code(op, code),
        _ => return None,
    })
}

fn from_code(op: Op<'_>, code: &ErrorCode) -> Option<LogError> {
    let topic = op.topic().to_string();
    Some(match code {
        ErrorCode::TopicNotFound | ErrorCode::TopicDeleted => LogError::UnknownTopic(topic),
        ErrorCode::TopicAlreadyExists => LogError::TopicExists(topic),
        ErrorCode::TopicInvalidName => LogError::InvalidTopicName(topic),
        ErrorCode::NotLeaderForPartition
        | ErrorCode::PartitionNotLeader
        | ErrorCode::PartitionPendingInitialization
        | ErrorCode::TopicPendingInitialization
        | ErrorCode::TopicNotProvisioned
        | ErrorCode::SpuOffline
        | ErrorCode::SpuNotFound
        | ErrorCode::RequestTimedOut { .. } => LogError::PartitionOffline {
            topic,
            partition: op.partition(),
            reason: code.to_string(),
        },
        _ => return None,
    })
}

fn unreachable(endpoint: &str, err: &anyhow::Error) -> LogError {
    LogError::Unreachable {
        endpoint: endpoint.to_string(),
        reason: format!("{err:#}"),
    }
}

fn backend(op: Op<'_>, err: &anyhow::Error) -> LogError {
    LogError::Backend {
        backend: "fluvio",
        context: op.describe(),
        reason: format!("{err:#}"),
        // A produce request that failed after being sent may have been stored.
        may_have_been_written: matches!(op, Op::Append(..)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeouts_are_transient_except_for_appends() {
        let elapsed = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            std::future::pending::<()>(),
        )
        .await
        .unwrap_err();
        let err = anyhow::Error::new(elapsed);
        let read = classify("h:1", Op::Read("t", 2), &err);
        assert!(
            matches!(read, LogError::PartitionOffline { partition: 2, .. }),
            "{read:?}"
        );
        assert!(classify("h:1", Op::Admin("t"), &err).is_transient());
        let append = classify("h:1", Op::Append("t", 0), &err);
        assert!(
            !append.is_transient() && append.may_have_been_written(),
            "{append:?}"
        );
    }

    #[test]
    fn typed_cases() {
        let op = Op::Append("clicks", 3);
        let e = anyhow::Error::new(FluvioError::TopicNotFound("clicks".into()));
        assert!(matches!(classify("h:1", op, &e), LogError::UnknownTopic(t) if t == "clicks"));
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let mapped = classify("h:1", Op::Connect, &e);
        assert!(mapped.is_transient(), "{mapped}");
        assert!(matches!(mapped, LogError::Unreachable { endpoint, .. } if endpoint == "h:1"));
        let e = anyhow::Error::new(ErrorCode::NotLeaderForPartition);
        let mapped = classify("h:1", op, &e);
        assert!(
            matches!(mapped, LogError::PartitionOffline { partition: 3, .. }),
            "{mapped}"
        );
        let e = anyhow::Error::new(ApiError::Code(ErrorCode::TopicAlreadyExists, None));
        assert!(matches!(
            classify("h:1", Op::Admin("t"), &e),
            LogError::TopicExists(_)
        ));
        let e = anyhow::anyhow!("something odd");
        let mapped = classify("h:1", op, &e);
        assert!(mapped.may_have_been_written() && !mapped.is_transient());
        let mapped = classify_code(Op::Read("t", 0), &ErrorCode::StorageError);
        assert!(!mapped.may_have_been_written());
    }
}
