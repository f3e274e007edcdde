//! The broker-to-broker wire format for Raft messages: why it exists is that thousands of Raft
//! groups share one TCP connection per pair of brokers, so one frame carries the messages of many
//! groups, and decoding must survive any bytes a peer (or anyone else) sends.
//!
//! ```text
//! connection = preamble ‖ frame*        (one way: the connecting broker only writes)
//! preamble   = "SKRAFT" ‖ version:u16 (big endian, = WIRE_VERSION)           8 bytes
//! frame      = length:u32 (big endian, bytes that follow; 0..=MAX_FRAME_BYTES) ‖ Envelope
//!
//! +---------+------------------------------------------------------------------+
//! | 0..4    | length of the Envelope in bytes                                  |
//! | 4..     | Envelope, protobuf (prost 0.14):                                 |
//! |         |   1: from_node  uint64           broker id of the sender         |
//! |         |   2: batches    repeated GroupMessages                           |
//! |         |      GroupMessages:                                              |
//! |         |        1: group     uint64       Raft group id (see GroupId)     |
//! |         |        2: messages  repeated bytes                               |
//! |         |           each one raft::eraftpb::Message in raft's own prost    |
//! |         |           0.11 encoding, in the order the group sent them        |
//! +---------+------------------------------------------------------------------+
//! ```
//! The preamble turns away whatever is not a Skiff broker of this wire version (a Kafka client
//! on the wrong port, say) before any frame is read. There is no authentication: the brokers'
//! network is trusted, as Kafka's PLAINTEXT inter-broker listener is.
//!
//! A frame whose length exceeds [`MAX_FRAME_BYTES`] is refused before anything is allocated; an
//! undecodable envelope is refused whole (the connection cannot be trusted to be in sync any
//! more); an undecodable or unknown Raft message inside a good envelope is refused alone. Raft
//! messages are validated so that their enum fields are known values: raft-rs panics on unknown
//! `msg_type` / `entry_type` values (`get_msg_type`), and network input must never panic.
//!
//! Heartbeat coalescing lives here too ([`EnvelopeBuilder`]): every message queued for a peer at
//! flush time — the heartbeats of all idle groups included — goes out in one frame, and a
//! heartbeat identical to the previous message of the same group in that frame is sent once.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;
use raft::prelude::{EntryType, Message, MessageType};

/// Version of this wire format, sent in the preamble of every connection.
pub const WIRE_VERSION: u16 = 1;
/// What a connecting broker writes first.
pub const PREAMBLE: [u8; 8] = {
    let v = WIRE_VERSION.to_be_bytes();
    [b'S', b'K', b'R', b'A', b'F', b'T', v[0], v[1]]
};
/// Bytes of the length prefix in front of every envelope.
pub const FRAME_HEADER_BYTES: usize = 4;
/// Largest envelope a frame may carry (the length prefix excluded). Raft's `max_size_per_msg`
/// must stay well below it: a single message that does not fit is dropped by the sender.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

pub use crate::group_id::GroupId;

/// The body of one frame: everything one broker sends another in one flush.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// Broker id of the sender (the receiver hands it to the driver with every message).
    #[prost(uint64, tag = "1")]
    pub from_node: u64,
    /// The messages, grouped by Raft group; each group appears once per envelope.
    #[prost(message, repeated, tag = "2")]
    pub batches: Vec<GroupMessages>,
}

/// The messages of one Raft group inside an [`Envelope`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupMessages {
    /// The [`GroupId`] number.
    #[prost(uint64, tag = "1")]
    pub group: u64,
    /// Each one `raft::eraftpb::Message`, encoded with raft's prost 0.11 codec.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub messages: Vec<Bytes>,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection preamble {0:02x?} is not a Skiff raft transport of wire version {WIRE_VERSION}")]
    BadPreamble([u8; 8]),
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    FrameTooLarge { len: usize, max: usize },
    #[error("undecodable envelope: {0}")]
    Envelope(#[from] prost::DecodeError),
    #[error("undecodable raft message: {0}")]
    RaftMessage(#[from] prost_011::DecodeError),
    #[error("raft message of unknown type {0}")]
    UnknownMessageType(i32),
    #[error("raft entry of unknown type {0}")]
    UnknownEntryType(i32),
}

/// Checks the first bytes of an incoming connection.
pub fn check_preamble(preamble: [u8; 8]) -> Result<(), WireError> {
    if preamble == PREAMBLE {
        Ok(())
    } else {
        Err(WireError::BadPreamble(preamble))
    }
}

/// Checks a frame's length prefix before its body is read (or allocated).
pub fn check_frame_len(len: u32) -> Result<usize, WireError> {
    let len = len as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(len)
}

/// Encodes an envelope as a whole frame (length prefix included).
pub fn encode_frame(envelope: &Envelope) -> Result<Vec<u8>, WireError> {
    let len = envelope.encoded_len();
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut buf = Vec::with_capacity(FRAME_HEADER_BYTES + len);
    // `len` fits in u32: it is at most MAX_FRAME_BYTES.
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    envelope.encode_raw(&mut buf);
    Ok(buf)
}

/// Decodes the body of a frame (without its length prefix).
pub fn decode_envelope(body: &[u8]) -> Result<Envelope, WireError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(Envelope::decode(body)?)
}

/// Raft's own encoding of a message (prost 0.11), as carried inside [`GroupMessages`].
pub fn encode_raft(message: &Message) -> Bytes {
    Bytes::from(prost_011::Message::encode_to_vec(message))
}

/// Decodes one Raft message and checks that raft-rs can step it without panicking.
pub fn decode_raft(bytes: &[u8]) -> Result<Message, WireError> {
    let message = <Message as prost_011::Message>::decode(bytes)?;
    if MessageType::from_i32(message.msg_type).is_none() {
        return Err(WireError::UnknownMessageType(message.msg_type));
    }
    if let Some(e) = message
        .entries
        .iter()
        .find(|e| EntryType::from_i32(e.entry_type).is_none())
    {
        return Err(WireError::UnknownEntryType(e.entry_type));
    }
    Ok(message)
}

/// Upper bound of what one message adds to an envelope: its bytes, the field tag and length.
fn message_overhead(len: usize) -> usize {
    len + 1 + prost::length_delimiter_len(len)
}

/// Upper bound of what a new group adds to an envelope (its tag, length and group id).
const GROUP_OVERHEAD: usize = 1 + 5 + 1 + 10;
/// Upper bound of the envelope's own fields besides its groups.
const ENVELOPE_OVERHEAD: usize = 1 + 10;

/// Collects the messages of one flush to one peer into an envelope, grouped by Raft group
/// (each group's messages in the order they were pushed), coalescing repeated heartbeats.
#[derive(Debug)]
pub struct EnvelopeBuilder {
    from_node: u64,
    groups: BTreeMap<GroupId, Vec<Bytes>>,
    /// Upper bound of the encoded envelope's size.
    size: usize,
    messages: usize,
}

/// What [`EnvelopeBuilder::push`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Added to the envelope.
    Added,
    /// A heartbeat identical to the group's previous message in this envelope: not added.
    Coalesced,
    /// The envelope is too full for it: flush the envelope and push it again.
    Full,
    /// Larger than any frame may be: it can never be sent.
    TooLarge,
}

impl EnvelopeBuilder {
    pub fn new(from_node: u64) -> Self {
        Self {
            from_node,
            groups: BTreeMap::new(),
            size: ENVELOPE_OVERHEAD,
            messages: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Messages in the envelope so far.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Adds one encoded Raft message of `group`; `heartbeat` says it is a `MsgHeartbeat`.
    pub fn push(&mut self, group: GroupId, message: Bytes, heartbeat: bool) -> Pushed {
        let previous = self.groups.get(&group);
        if heartbeat && previous.and_then(|m| m.last()).is_some_and(|last| *last == message) {
            return Pushed::Coalesced;
        }
        let added = message_overhead(message.len()) + if previous.is_none() { GROUP_OVERHEAD } else { 0 };
        if ENVELOPE_OVERHEAD + GROUP_OVERHEAD + message_overhead(message.len()) > MAX_FRAME_BYTES {
            return Pushed::TooLarge;
        }
        if self.size + added > MAX_FRAME_BYTES {
            return Pushed::Full;
        }
        self.size += added;
        self.messages += 1;
        self.groups.entry(group).or_default().push(message);
        Pushed::Added
    }

    /// The envelope built so far; the builder starts over empty.
    pub fn take(&mut self) -> Envelope {
        let groups = std::mem::take(&mut self.groups);
        self.size = ENVELOPE_OVERHEAD;
        self.messages = 0;
        Envelope {
            from_node: self.from_node,
            batches: groups
                .into_iter()
                .map(|(group, messages)| GroupMessages {
                    group: group.0,
                    messages,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::Entry;

    fn raft_message(msg_type: MessageType, term: u64) -> Message {
        Message {
            msg_type: msg_type as i32,
            to: 2,
            from: 1,
            term,
            commit: 7,
            entries: vec![Entry {
                term,
                index: 3,
                data: b"batch".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn frame_round_trips_messages_of_many_groups() {
        let mut b = EnvelopeBuilder::new(1);
        let mut sent = Vec::new();
        for g in 0..50u64 {
            for term in 1..3 {
                let m = raft_message(MessageType::MsgAppend, term);
                assert_eq!(b.push(GroupId(g), encode_raft(&m), false), Pushed::Added);
                sent.push((g, m));
            }
        }
        let frame = encode_frame(&b.take()).unwrap();
        assert!(b.is_empty());
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(check_frame_len(len).unwrap(), frame.len() - FRAME_HEADER_BYTES);
        let envelope = decode_envelope(&frame[4..]).unwrap();
        assert_eq!(envelope.from_node, 1);
        let got: Vec<(u64, Message)> = envelope
            .batches
            .iter()
            .flat_map(|gm| gm.messages.iter().map(|m| (gm.group, decode_raft(m).unwrap())))
            .collect();
        assert_eq!(got, sent);
    }

    #[test]
    fn identical_heartbeats_of_one_group_are_coalesced() {
        let mut b = EnvelopeBuilder::new(1);
        let hb = encode_raft(&raft_message(MessageType::MsgHeartbeat, 4));
        let newer = encode_raft(&raft_message(MessageType::MsgHeartbeat, 5));
        assert_eq!(b.push(GroupId(1), hb.clone(), true), Pushed::Added);
        assert_eq!(b.push(GroupId(1), hb.clone(), true), Pushed::Coalesced);
        assert_eq!(b.push(GroupId(2), hb.clone(), true), Pushed::Added);
        assert_eq!(b.push(GroupId(1), newer, true), Pushed::Added);
        // Not a heartbeat: never coalesced.
        assert_eq!(b.push(GroupId(2), hb.clone(), false), Pushed::Added);
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn builder_reports_full_before_exceeding_the_frame_limit() {
        let mut b = EnvelopeBuilder::new(1);
        let big = Bytes::from(vec![0u8; MAX_FRAME_BYTES / 3]);
        assert_eq!(b.push(GroupId(1), big.clone(), false), Pushed::Added);
        assert_eq!(b.push(GroupId(2), big.clone(), false), Pushed::Added);
        assert_eq!(b.push(GroupId(3), big.clone(), false), Pushed::Full);
        let frame = encode_frame(&b.take()).unwrap();
        assert!(frame.len() <= MAX_FRAME_BYTES + FRAME_HEADER_BYTES);
        assert_eq!(b.push(GroupId(3), big, false), Pushed::Added);
        assert_eq!(
            b.push(GroupId(4), Bytes::from(vec![0u8; MAX_FRAME_BYTES]), false),
            Pushed::TooLarge
        );
    }

    #[test]
    fn oversized_and_malformed_input_is_refused() {
        assert!(matches!(
            check_frame_len(MAX_FRAME_BYTES as u32 + 1),
            Err(WireError::FrameTooLarge { .. })
        ));
        assert!(check_frame_len(u32::MAX).is_err());
        assert!(matches!(decode_envelope(&[0xff; 16]), Err(WireError::Envelope(_))));
        assert!(matches!(decode_raft(&[0xff; 16]), Err(WireError::RaftMessage(_))));
        let mut m = raft_message(MessageType::MsgAppend, 1);
        m.msg_type = 999;
        assert!(matches!(
            decode_raft(&encode_raft(&m)),
            Err(WireError::UnknownMessageType(999))
        ));
        let mut m = raft_message(MessageType::MsgAppend, 1);
        m.entries[0].entry_type = -3;
        assert!(matches!(
            decode_raft(&encode_raft(&m)),
            Err(WireError::UnknownEntryType(-3))
        ));
    }
}
