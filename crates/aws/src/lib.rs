//! The AWS floor: every AWS SDK call of the backend lives in this crate. `sdk` builds the
//! SDK configuration; the other modules implement the use cases' ports over AWS. Each keeps
//! the SDK error as its `source` and classifies it as transient or permanent; none puts
//! request data into an error message.

pub mod analytics;
pub mod calls;
pub mod contracts;
pub mod crm;
pub mod deadletter;
pub mod dnc;
pub mod dsar;
pub mod dsar_figures;
pub mod dsar_staff;
pub mod dsar_subjects;
pub mod dynamo;
pub mod kms;
pub mod ledger;
pub mod mail;
pub mod outbox;
pub mod recordings;
pub mod retell;
pub mod retention;
pub mod s3;
pub mod sales;
pub mod sdk;
pub mod secrets;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use usecases::ports::Retry;

/// Service error codes that say "try again later" across DynamoDB and KMS.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "LimitExceededException",
    // S3 throttling (the analytics export's parts resume after it).
    "SlowDown",
];

/// An AWS SDK failure as a [`StoreError`]: classified, the SDK error kept as the source,
/// and logged with the operation and the service's error code only (never the message,
/// which may quote request data).
pub fn store_failure<E, R>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, R>,
) -> usecases::ports::StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retry = classify(&err);
    tracing::warn!(
        service,
        operation,
        code = error_code(&err),
        ?retry,
        "aws call failed"
    );
    usecases::ports::StoreError {
        operation,
        retry,
        source: Some(Box::new(err)),
    }
}

/// Whether an SDK failure is worth retrying.
pub fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Retry {
    match err {
        SdkError::ConstructionFailure(_) => Retry::Permanent,
        SdkError::ServiceError(se) => match se.err().code() {
            Some(code) if TRANSIENT_CODES.contains(&code) => Retry::Transient,
            _ => Retry::Permanent,
        },
        _ => Retry::Transient,
    }
}

/// The service error code, safe to log (never the message, which may quote input).
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "construction_failure",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch_failure",
        SdkError::ResponseError(_) => "response_error",
        SdkError::ServiceError(se) => match se.err().code() {
            Some(code) => TRANSIENT_CODES
                .iter()
                .chain(KNOWN_PERMANENT_CODES)
                .find(|c| **c == code)
                .copied()
                .unwrap_or("service_error"),
            None => "service_error",
        },
        _ => "unknown",
    }
}

const KNOWN_PERMANENT_CODES: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionCanceledException",
    "ResourceNotFoundException",
    "ValidationException",
    "AccessDeniedException",
    "NotFoundException",
    "DisabledException",
    "KMSInvalidStateException",
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "InvalidKeyUsageException",
];
