//! Kafka framing: every request is a big-endian i32 size followed by that many bytes. The decoder
//! checks a frame is complete before it takes it (check-then-parse), and refuses sizes that are
//! negative or above `socket.request.max.bytes` before buffering a single byte of them.

use bytes::{Buf, Bytes, BytesMut};

/// `socket.request.max.bytes`: Kafka's default cap on one request (100 MiB).
pub const SOCKET_REQUEST_MAX_BYTES_DEFAULT: usize = 100 * 1024 * 1024;

/// Most a partial frame makes the buffer grow by at once.
const RESERVE_CHUNK: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("request size {0} is negative")]
    Negative(i32),
    #[error("request size {size} exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: usize, max: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_size: usize,
}

impl FrameDecoder {
    pub fn new(max_size: usize) -> Self {
        FrameDecoder { max_size }
    }

    /// Takes one whole frame body off the front of `buf`, or `None` if it is not all there yet.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if size < 0 {
            return Err(FrameError::Negative(size));
        }
        let size = size as usize;
        if size > self.max_size {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_size,
            });
        }
        if buf.len() < 4 + size {
            // Grow with what actually arrives, not with what the size prefix claims.
            buf.reserve((4 + size - buf.len()).min(RESERVE_CHUNK));
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(size).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_whole_frame_then_takes_exactly_it() {
        let d = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(&[3, 0, 0, 0, 1, 9]);
        assert_eq!(d.decode(&mut buf).unwrap().as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(d.decode(&mut buf).unwrap().as_deref(), Some(&[9u8][..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_negative_and_oversized_lengths_without_buffering() {
        let d = FrameDecoder::new(100);
        let mut neg = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(d.decode(&mut neg), Err(FrameError::Negative(-1)));
        let mut big = BytesMut::from(&(i32::MAX).to_be_bytes()[..]);
        assert!(matches!(d.decode(&mut big), Err(FrameError::TooLarge { .. })));
        assert!(big.capacity() < 1024, "nothing reserved for a refused frame");
    }
}
