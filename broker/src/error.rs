//! The error a handler turns into a Kafka error code: what went wrong, as the client will see it.

use kafka_protocol::ResponseError;
use skiff_protocol::kafka_protocol;
use skiff_storage::StorageError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ResponseError,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> i16 {
        self.code.code()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let code = ResponseError::try_from_code(e.kafka_code()).unwrap_or(ResponseError::UnknownServerError);
        if code == ResponseError::KafkaStorageError {
            tracing::error!(error = %e, "storage failure");
        }
        ApiError {
            code,
            message: e.to_string(),
        }
    }
}
